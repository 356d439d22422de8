"""Times ONE model in its own process and prints one JSON line.

Run as `python -m benchmarks.latency_worker '<json args>'` with args
{model_path, engine: "pytorch"|"onnxruntime", batch, seq_len, threads, warmup, iters}.

Why a process per model: timing several engines in one process inflated p50 by up to 1.7x on
the benchmark machine (thread pools, allocator state and caches of one engine linger while
the next runs). A fresh process also makes peak RSS mean "this model", not "everything so far".
Each engine module is imported only inside its own branch for the same reason: the ONNX
Runtime worker never loads torch, so its RSS and start-up stay its own.
"""

from __future__ import annotations

import inspect
import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from compressor.errors import UserError

ENGINES = ("pytorch", "onnxruntime")
REQUIRED = ("model_path", "engine", "batch", "seq_len", "threads", "warmup", "iters")
SEED = 0
# BERT-family vocabularies keep special and [unusedN] tokens below id 1000; real word pieces
# above it give the attention the same work as real text. Tiny test vocabularies have no such
# block, so only their 5 specials ([PAD] [UNK] [CLS] [SEP] [MASK]) are skipped.
REAL_TOKEN_START = 1000
SMALL_VOCAB_TOKEN_START = 5


def _check_args(args: dict[str, Any]) -> None:
    missing = [key for key in REQUIRED if key not in args]
    if missing:
        raise UserError(f"latency worker args lack {missing} — pass all of {list(REQUIRED)}")
    if args["engine"] not in ENGINES:
        raise UserError(f"unknown engine {args['engine']!r} — use one of {list(ENGINES)}")
    for key in ("batch", "seq_len", "threads", "iters"):
        if not isinstance(args[key], int) or args[key] < 1:
            raise UserError(f"{key}={args[key]!r} is not a positive integer — pass one >= 1")
    if not isinstance(args["warmup"], int) or args["warmup"] < 0:
        raise UserError(f"warmup={args['warmup']!r} is negative — pass an integer >= 0")


def synthetic_inputs(
    vocab_size: int, batch: int, seq_len: int, names: list[str]
) -> dict[str, np.ndarray]:
    """Exactly batch x seq_len int64 inputs, seeded so every engine and round sees the same ids.

    No padding on purpose: a full mask makes every model do the work its shape promises, so
    the teacher/student ratio compares compute, not how much padding each happened to skip.
    """
    start = REAL_TOKEN_START if vocab_size > 2 * REAL_TOKEN_START else SMALL_VOCAB_TOKEN_START
    if vocab_size <= start:
        raise UserError(f"vocab_size {vocab_size} is too small — the model needs > {start} ids")
    rng = np.random.default_rng(SEED)
    shape = (batch, seq_len)
    makers: dict[str, Callable[[], np.ndarray]] = {
        "input_ids": lambda: rng.integers(start, vocab_size, size=shape, dtype=np.int64),
        "attention_mask": lambda: np.ones(shape, dtype=np.int64),
        "token_type_ids": lambda: np.zeros(shape, dtype=np.int64),
    }
    unknown = [name for name in names if name not in makers]
    if unknown:
        raise UserError(
            f"the model expects inputs {unknown} — only {list(makers)} can be synthesised; "
            "export a plain sequence classifier"
        )
    return {name: makers[name]() for name in names}


def _check_seq_len(config: dict[str, Any], seq_len: int) -> None:
    """Fail with the limit instead of an index error deep inside the embedding layer."""
    limit = config.get("max_position_embeddings")
    if limit is not None and seq_len > limit:
        raise UserError(
            f"seq_len {seq_len} exceeds the model's max_position_embeddings {limit} — "
            f"benchmark with seq_len <= {limit}"
        )


def _time_calls(call: Callable[[], object], warmup: int, iters: int) -> list[float]:
    for _ in range(warmup):
        call()
    samples_ms: list[float] = []
    for _ in range(iters):
        start = time.perf_counter()
        call()
        samples_ms.append((time.perf_counter() - start) * 1000.0)
    return samples_ms


def _run_pytorch(args: dict[str, Any]) -> tuple[list[float], str, str]:
    import torch
    from transformers import AutoModelForSequenceClassification

    model_dir = Path(args["model_path"])
    if not (model_dir / "config.json").is_file():
        raise UserError(f"{model_dir} has no config.json — pass a Hugging Face model folder")
    # Pinned before the model exists, so no pool is ever created with the default size.
    torch.set_num_threads(args["threads"])
    torch.set_num_interop_threads(1)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    _check_seq_len(model.config.to_dict(), args["seq_len"])
    accepted = inspect.signature(model.forward).parameters
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in accepted]
    arrays = synthetic_inputs(model.config.vocab_size, args["batch"], args["seq_len"], names)
    inputs = {name: torch.from_numpy(arr) for name, arr in arrays.items()}

    def call() -> object:
        return model(**inputs).logits

    with torch.inference_mode():
        samples = _time_calls(call, args["warmup"], args["iters"])
    return samples, "torch-cpu", torch.__version__


ORT_INT_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}


def _run_onnxruntime(args: dict[str, Any]) -> tuple[list[float], str, str]:
    import onnxruntime as ort

    model_path = Path(args["model_path"])
    if not model_path.is_file():
        # A folder is refused rather than guessed: model.onnx and model_int8.onnx share one.
        raise UserError(f"{model_path} is not an ONNX file — pass the path of the .onnx file")
    config_path = model_path.parent / "config.json"
    if not config_path.is_file():
        raise UserError(
            f"no config.json next to {model_path} — keep the exported model's config.json "
            "in the ONNX file's folder (the vocab size comes from it)"
        )
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if "vocab_size" not in config:
        raise UserError(f"{config_path} has no vocab_size — copy the model's config.json there")
    _check_seq_len(config, args["seq_len"])

    options = ort.SessionOptions()
    options.intra_op_num_threads = args["threads"]
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(
        str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    declared = session.get_inputs()
    arrays = synthetic_inputs(
        int(config["vocab_size"]), args["batch"], args["seq_len"], [i.name for i in declared]
    )
    feeds = {i.name: arrays[i.name].astype(ORT_INT_TYPES.get(i.type, np.int64)) for i in declared}

    def call() -> object:
        return session.run(None, feeds)

    samples = _time_calls(call, args["warmup"], args["iters"])
    return samples, session.get_providers()[0], ort.__version__


def _peak_rss_mb() -> float:
    """Peak memory of this process's own address space.

    On Linux ru_maxrss survives exec, so a worker started from a 1.5 GB parent would report
    the parent's peak; VmHWM belongs to the new address space alone. Elsewhere ru_maxrss
    (KiB on Linux, bytes on macOS) is the best there is.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def measure(args: dict[str, Any]) -> dict[str, Any]:
    """Load, warm up and time one model; the dict is what the worker prints."""
    _check_args(args)
    runner = _run_pytorch if args["engine"] == "pytorch" else _run_onnxruntime
    samples, provider, version = runner(args)
    return {
        "engine": args["engine"],
        "model_path": str(args["model_path"]),
        "batch": args["batch"],
        "seq_len": args["seq_len"],
        "threads": args["threads"],
        "provider": provider,
        "engine_version": version,
        "samples_ms": samples,
        "peak_rss_mb": _peak_rss_mb(),
    }


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m benchmarks.latency_worker '<json args>'", file=sys.stderr)
        return 2
    try:
        args = json.loads(argv[0])
        if not isinstance(args, dict):
            raise UserError("latency worker args are not a JSON object — pass one")
        result = measure(args)
    except json.JSONDecodeError as exc:
        print(f"latency worker args are not valid JSON ({exc}) — pass one object", file=sys.stderr)
        return 2
    except UserError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
