"""What moving the tokenizer into the graph costs or saves: each end-to-end file of a run
(`exporters.e2e`) against its model file fed by the Python tokenizer, on the dev sentences.

`make bench-e2e` runs this on the `make demo` student. For the fp32 and the quantized file:
size of the model file and of the end-to-end file, then per batch size (1 and 32:
consecutive dev sentences) the time per sentence of "Hugging Face fast tokenizer + ONNX
Runtime session" (what `predict` does) and of the end-to-end session, in paired rounds that
alternate the two in one process with the same intra-op threads (A B A B: the machine's
drift hits both), the ratio being the median of the per-round ratios with its min to max.
Writes benchmarks/results/bench-e2e.md / .json.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.experiments.results import write_results
from benchmarks.report import EN_DASH, TIMES
from compressor import markdown
from compressor.runfolder import RunFolder

BATCHES = (1, 32)


def _timed(call: Callable[[list[str]], Any], batches: list[list[str]]) -> float:
    """Seconds per sentence over every batch."""
    start = time.perf_counter()
    for batch in batches:
        call(batch)
    return (time.perf_counter() - start) / sum(len(b) for b in batches)


def compare(graph: Path, e2e: Path, texts: list[str], args: argparse.Namespace) -> dict:
    """Per batch size: ms per sentence of both ways and the paired-round ratio."""
    import onnxruntime as ort

    from compressor.inference import onnx_session
    from compressor.layout import package_root
    from compressor.models import load_tokenizer
    from exporters.e2e import run_e2e

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    model = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in model.get_inputs()]
    tokenizer = load_tokenizer(package_root(graph))
    end_to_end = onnx_session(e2e, threads=args.threads)

    def python_side(batch: list[str]) -> np.ndarray:
        enc = tokenizer(batch, padding="longest", truncation=True, max_length=args.max_length,
                        return_tensors="np")  # fmt: skip
        return model.run(None, {k: enc[k].astype(np.int64) for k in names})[0]

    rows = {}
    for size in BATCHES:
        batches = [texts[i : i + size] for i in range(0, len(texts), size)]
        _timed(python_side, batches[:3])  # warm-up: first calls allocate
        _timed(lambda b: run_e2e(end_to_end, b), batches[:3])
        rounds = []
        for _ in range(args.rounds):
            here = _timed(python_side, batches)
            inside = _timed(lambda b: run_e2e(end_to_end, b), batches)
            rounds.append((here, inside))
        ratios = [here / inside for here, inside in rounds]
        rows[size] = {
            "python_ms": 1e3 * float(np.median([r[0] for r in rounds])),
            "e2e_ms": 1e3 * float(np.median([r[1] for r in rounds])),
            "ratio": float(np.median(ratios)),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
        }
    return rows


def render(data: dict[str, Any], args: argparse.Namespace) -> str:
    head = ["file", "model MB", "end-to-end MB"]
    for size in BATCHES:
        head += [f"b{size}: tokenizer + model ms/sent", f"b{size}: end-to-end ms/sent",
                 f"b{size}: end-to-end speed-up"]  # fmt: skip
    body = []
    for row in data["rows"]:
        cells = [row["file"], f"{row['model_mb']:.1f}", f"{row['e2e_mb']:.1f}"]
        for size in BATCHES:
            t = row["timing"][str(size)]
            cells += [f"{t['python_ms']:.3f}", f"{t['e2e_ms']:.3f}",
                      f"{t['ratio']:.2f}{TIMES} ({t['ratio_min']:.2f}{EN_DASH}"
                      f"{t['ratio_max']:.2f})"]  # fmt: skip
        body.append(cells)
    lines = [
        f"Run `{args.run}`: every dev sentence ({data['sentences']}), consecutive batches, "
        f"{args.threads} intra-op threads, {args.rounds} paired rounds in one process "
        "(Hugging Face's fast tokenizer + ONNX Runtime, then the end-to-end file with "
        "onnxruntime-extensions); a speed-up above 1 means the end-to-end file is faster. "
        "Every end-to-end file passed its gate (token ids equal on every dev sentence).",
        "",
        markdown.table(head, body).rstrip("\n"),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished compress run with end-to-end files")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from compressor.data import load_task_data

    run = RunFolder.open(args.run)
    recipe = run.recipe()
    args.max_length = recipe.data.max_length
    made = [f for f in run.result("e2e").get("files", []) if f.get("path")]
    if not made:
        raise SystemExit(f"{args.run} has no end-to-end file (export.e2e off, or all failed)")
    texts = load_task_data(recipe.data).dev.texts
    rows = []
    for item in made:
        graph, e2e = Path(item["source"]), Path(item["path"])
        timing = compare(graph, e2e, texts, args)
        rows.append({"file": graph.name, "model_mb": graph.stat().st_size / 2**20,
                     "e2e_mb": e2e.stat().st_size / 2**20,
                     "timing": {str(k): v for k, v in timing.items()}})  # fmt: skip
    data = {"sentences": len(texts), "rows": rows}
    text = render(data, args)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    write_results("bench-e2e", text, {"args": settings, **data})
    print(text)


if __name__ == "__main__":
    main()
