"""Our latency figures against ONNX Runtime's own BERT benchmark on the same files.

`onnxruntime.transformers.bert_perf_test` is the maintainers' tool for timing BERT-style ONNX
models. Both tools time the same file at the same batch, sequence length and thread count,
alternating ours / theirs in fresh processes, so their p50 ratio is read from one run. If our
harness added overhead or measured something else, the ratio would sit away from 1 by more
than the round-to-round spread of either tool.

`python -m benchmarks.experiments.ort_perf RUN_DIR OUT` takes a compress run (teacher and student
ONNX files) and writes OUT/agreement.md and .json, and the same table into
benchmarks/results/bench-latency-agreement.md and .json.
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.experiments.results import RESULTS, write_results
from benchmarks.latency import Variant, run_latency, worker_env
from compressor import atomic, markdown
from compressor.errors import UserError
from compressor.layout import graphs_dir

RESULTS_NAME = "bench-latency-agreement"


def peer_percentiles(
    onnx_path: Path, batch: int, seq_len: int, threads: int, iters: int
) -> dict[str, float]:
    """bert_perf_test's own latency percentiles for one file (it writes a TSV next to the
    model, so the model is linked into a scratch folder first)."""
    with tempfile.TemporaryDirectory() as scratch:
        link = Path(scratch) / onnx_path.name
        link.symlink_to(onnx_path.resolve())
        cmd = [
            sys.executable,
            "-m",
            "onnxruntime.transformers.bert_perf_test",
            "--model",
            str(link),
            "-b",
            str(batch),
            "-s",
            str(seq_len),
            "--samples",
            "1",
            "-t",
            str(iters),
            "-n",
            str(threads),
            "--input_ids_name",
            "input_ids",
            "--segment_ids_name",
            "token_type_ids",
            "--input_mask_name",
            "attention_mask",
            "--opt_level",
            "99",
        ]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=worker_env(threads), check=False
        )
        tables = list(Path(scratch).glob("perf_results_*.txt"))
        rows = []
        if tables:
            with tables[0].open(newline="") as handle:
                rows = list(csv.DictReader(handle, delimiter="\t"))
        # its worker process can fail while the tool still exits 0 with an empty table
        if proc.returncode != 0 or not rows:
            tail = (proc.stderr or proc.stdout)[-2000:]
            raise RuntimeError(f"bert_perf_test failed on {onnx_path}: {tail}")
        row = rows[0]
    return {
        "mean": float(row["Latency(ms)"]),
        "p50": float(row["Latency_P50"]),
        "p90": float(row["Latency_P90"]),
        "p99": float(row["Latency_P99"]),
    }


def agreement(
    files: dict[str, Path], *, batch: int, seq_len: int, threads: int, rounds: int, iters: int
) -> list[dict[str, Any]]:
    rows = []
    for label, path in files.items():
        ours, theirs = [], []
        for _ in range(rounds):
            ours += run_latency(
                [Variant(label, path, "onnxruntime")],
                batches=(batch,),
                seq_lens=(seq_len,),
                threads=threads,
                warmup=5,
                iters=iters,
                rounds=1,
                progress=False,
            )
            theirs.append(peer_percentiles(path, batch, seq_len, threads, iters))
        ours_p50 = [r["p50_ms"] for r in ours]
        theirs_p50 = [t["p50"] for t in theirs]
        ratios = [a / b for a, b in zip(ours_p50, theirs_p50, strict=True)]
        spread = max(max(ours_p50) / min(ours_p50), max(theirs_p50) / min(theirs_p50))
        rows.append(
            {
                "label": label,
                "batch": batch,
                "seq_len": seq_len,
                "threads": threads,
                "iters": iters,
                "ours_p50_ms": ours_p50,
                "theirs_p50_ms": theirs_p50,
                "ratio_median": statistics.median(ratios),
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
                "round_spread": spread,
                "agree": abs(statistics.median(ratios) - 1) <= spread - 1 + 0.05,
            }
        )
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    """The table with what was timed and how often, so that the results file stands alone."""
    iters = sorted({r["iters"] for r in rows})
    rounds = sorted({len(r["ours_p50_ms"]) for r in rows})
    body = markdown.table(
        ["file", "batch", "seq", "threads", "ours p50 ms (per round)",
         "theirs p50 ms (per round)", "ours / theirs (min\u2013max)", "round spread", "agree"],
        [
            [r["label"], r["batch"], r["seq_len"], r["threads"],
             ", ".join(f"{x:.2f}" for x in r["ours_p50_ms"]),
             ", ".join(f"{x:.2f}" for x in r["theirs_p50_ms"]),
             f"{r['ratio_median']:.3f} ({r['ratio_min']:.3f}\u2013{r['ratio_max']:.3f})",
             f"{r['round_spread']:.3f}", "yes" if r["agree"] else "NO"]
            for r in rows
        ],
    )  # fmt: skip
    return (
        "Ours = `benchmarks.latency_worker` (the harness behind `compressor benchmark`); theirs ="
        " `onnxruntime.transformers.bert_perf_test`; same file, shape and threads, alternating"
        " in fresh processes. Agree = the median ratio is within the larger tool's own"
        " round-to-round spread (+5 %). "
        f"{'/'.join(map(str, rounds))} rounds of {'/'.join(map(str, iters))} timed iterations"
        f" per tool; onnxruntime {importlib.metadata.version('onnxruntime')}.\n\n{body}"
    )


def write_table(out: Path, rows: list[dict[str, Any]], *, results: Path | None = None) -> str:
    """The comparison into OUT and, with `results`, into the committed results file: the same
    text in both."""
    text = render(rows)
    atomic.write_json(out / "agreement.json", rows)
    atomic.write_text(out / "agreement.md", text)
    if results is not None:
        write_results(RESULTS_NAME, text, rows, folder=results)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a compress run folder")
    parser.add_argument("out", type=Path)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=30)
    args = parser.parse_args()
    files = {
        "teacher ONNX": graphs_dir(args.run / "teacher_onnx") / "model.onnx",
        "student ONNX": graphs_dir(args.run / "onnx") / "model.onnx",
        "student ONNX int8": graphs_dir(args.run / "onnx") / "model_int8.onnx",
    }
    files = {label: path for label, path in files.items() if path.is_file()}
    if not files:
        raise UserError(f"{args.run} has no ONNX files — run `compressor compress` first")
    rows = [
        row
        for batch in args.batches
        for row in agreement(
            files,
            batch=batch,
            seq_len=args.seq_len,
            threads=args.threads,
            rounds=args.rounds,
            iters=args.iters,
        )
    ]
    print(write_table(args.out, rows, results=RESULTS))


if __name__ == "__main__":
    main()
