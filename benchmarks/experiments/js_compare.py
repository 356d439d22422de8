"""The shipped ONNX package in transformers.js, as a web or Node app would load it, against ONNX
Runtime in Python on the same files.

`make bench-js` runs this on the `make demo` student's package (`runs/demo/student/onnx`):
for the fp32 and the int8 file, every dev sentence one at a time through
`@huggingface/transformers` in Node (tests/js, pinned; `AutoTokenizer` +
`AutoModelForSequenceClassification` with `dtype`, loading the folder as it is) and through
the Python tokenizer + ONNX Runtime: dev accuracy of each, label agreement, and milliseconds
per sentence, tokenization included, with the same intra-op thread count. The two are timed
one after the other, not interleaved (two runtimes in two processes), so the ratio is
indicative. Writes benchmarks/results/bench-js.md / .json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.experiments.results import REPO, write_results
from compressor import markdown

JS_DIR = REPO / "tests" / "js"
DTYPES = {"fp32": "model.onnx", "int8": "model_int8.onnx"}


def node_side(package: Path, texts: list[str], max_length: int, threads: int) -> dict[str, Any]:
    """classify.mjs's JSON, after installing its pinned packages when they are missing."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise SystemExit("node and npm are needed: apt-get install nodejs npm")
    if not (JS_DIR / "node_modules").is_dir():
        subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
                       cwd=JS_DIR, check=True)  # fmt: skip
    request = {"folder": str(package.resolve()), "dtypes": list(DTYPES), "texts": texts,
               "max_length": max_length, "threads": threads}  # fmt: skip
    out = subprocess.run(["node", "classify.mjs"], cwd=JS_DIR, input=json.dumps(request),
                         capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(out.stdout)


def python_side(graph: Path, texts: list[str], max_length: int, threads: int) -> dict:
    """Logits and ms per sentence, one sentence at a time (as the Node side runs)."""
    import onnxruntime as ort

    from compressor.layout import package_root
    from compressor.models import load_tokenizer

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    tokenizer = load_tokenizer(package_root(graph))
    logits = []
    start = time.perf_counter()
    for text in texts:
        enc = tokenizer(text, truncation=True, max_length=max_length, return_tensors="np")
        logits.append(session.run(None, {k: enc[k].astype(np.int64) for k in names})[0][0])
    return {"logits": np.array(logits),
            "ms_per_sentence": 1e3 * (time.perf_counter() - start) / len(texts)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished compress run")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    from compressor.data import load_task_data
    from compressor.layout import graphs_dir
    from compressor.runfolder import RunFolder

    recipe = RunFolder.open(args.run).recipe()
    dev = load_task_data(recipe.data).dev
    package = args.run / "onnx"
    js = node_side(package, dev.texts, recipe.data.max_length, args.threads)
    id2label = json.loads((package / "config.json").read_text(encoding="utf-8"))["id2label"]
    rows = []
    for dtype, name in DTYPES.items():
        py = python_side(graph := graphs_dir(package) / name, dev.texts,
                         recipe.data.max_length, args.threads)  # fmt: skip
        py_labels = [id2label[str(i)] for i in py["logits"].argmax(1)]
        gold = [id2label[str(y)] for y in dev.labels]
        labels = np.array(js[dtype]["labels"])
        rows.append({
            "file": f"onnx/{graph.name}", "dtype": dtype,
            "js_accuracy": float(np.mean(labels == np.array(gold))),
            "python_accuracy": float(np.mean(np.array(py_labels) == np.array(gold))),
            "agreement": float(np.mean(labels == np.array(py_labels))),
            "max_abs_diff": float(np.abs(np.array(js[dtype]["logits"]) - py["logits"]).max()),
            "js_ms": js[dtype]["ms_per_sentence"], "python_ms": py["ms_per_sentence"],
        })  # fmt: skip
    head = ["file", "transformers.js dtype", "dev acc (js)", "dev acc (Python ORT)",
            "label agreement", "max |logit diff|", "ms/sentence js", "ms/sentence Python",
            "js / Python time"]  # fmt: skip
    body = [[r["file"], r["dtype"], f"{100 * r['js_accuracy']:.2f}",
             f"{100 * r['python_accuracy']:.2f}", f"{100 * r['agreement']:.2f}%",
             f"{r['max_abs_diff']:.1e}", f"{r['js_ms']:.2f}", f"{r['python_ms']:.2f}",
             f"{r['js_ms'] / r['python_ms']:.2f}"] for r in rows]  # fmt: skip
    text = "\n".join([
        f"`{package}` loaded as it is by `@huggingface/transformers` {js['version']} in Node "
        f"(onnxruntime-node) and by ONNX Runtime in Python; all {len(dev)} dev sentences one "
        f"at a time, tokenization included, {args.threads} intra-op threads, timed one "
        "runtime after the other (indicative ratio).",
        "",
        markdown.table(head, body).rstrip("\n"),
    ]) + "\n"  # fmt: skip
    write_results("bench-js", text, {"args": {"run": str(args.run), "threads": args.threads},
                                     "version": js["version"], "rows": rows})  # fmt: skip
    print(text)


if __name__ == "__main__":
    main()
