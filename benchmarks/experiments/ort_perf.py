"""Our latency figures against ONNX Runtime's own BERT benchmark on the same files.

`onnxruntime.transformers.bert_perf_test` is the maintainers' tool for timing BERT-style ONNX
models. Both tools time the same file at the same batch, sequence length and thread count,
alternating ours / theirs in fresh processes, so their p50 ratio is read from one run. If our
harness added overhead or measured something else, the ratio would sit away from 1 by more
than the round-to-round spread of either tool.

`python -m benchmarks.experiments.ort_perf RUN_DIR OUT` takes a compress run (teacher and student
ONNX files) and writes OUT/agreement.md and .json.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.latency import Variant, run_latency, worker_env
from compressor import atomic
from compressor.errors import UserError


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
    lines = [
        "Ours = `benchmarks.latency_worker` (the harness behind `compressor benchmark`); theirs ="
        " `onnxruntime.transformers.bert_perf_test`; same file, shape and threads, alternating"
        " in fresh processes. Agree = the median ratio is within the larger tool's own"
        " round-to-round spread (+5 %).",
        "",
        "| file | batch | seq | threads | ours p50 ms (per round) | theirs p50 ms (per round) "
        "| ours / theirs (min\u2013max) | round spread | agree |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['batch']} | {r['seq_len']} | {r['threads']} | "
            f"{', '.join(f'{x:.2f}' for x in r['ours_p50_ms'])} | "
            f"{', '.join(f'{x:.2f}' for x in r['theirs_p50_ms'])} | {r['ratio_median']:.3f} "
            f"({r['ratio_min']:.3f}\u2013{r['ratio_max']:.3f}) | {r['round_spread']:.3f} | "
            f"{'yes' if r['agree'] else 'NO'} |"
        )
    return "\n".join(lines) + "\n"


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
        "teacher ONNX": args.run / "teacher_onnx" / "model.onnx",
        "student ONNX": args.run / "onnx" / "model.onnx",
        "student ONNX int8": args.run / "onnx" / "model_int8.onnx",
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
    atomic.write_json(args.out / "agreement.json", rows)
    atomic.write_text(args.out / "agreement.md", render(rows))
    print(render(rows))


if __name__ == "__main__":
    main()
