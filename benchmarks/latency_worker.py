"""Times ONE model in its own process and prints one JSON line.

Run as `python -m benchmarks.latency_worker '<json args>'` with args
{model_path, engine: "pytorch"|"pytorch-compile"|"onnxruntime", batch, seq_len, threads,
warmup, iters} and optionally device ("cpu"|"cuda"), precision ("fp32"|"fp16", PyTorch;
an ONNX file carries its own), ort_provider ("cpu"|"cuda"|"tensorrt") and lengths (token
counts of real sentences, used when seq_len is "dev").

Why a process per model: timing several engines in one process inflated p50 by up to 1.7x on
the benchmark machine (thread pools, allocator state and caches of one engine linger while
the next runs). A fresh process also makes peak RSS mean "this model", not "everything so far".
Each engine module is imported only inside its own branch for the same reason: the ONNX
Runtime worker never loads torch, so its RSS and start-up stay its own.
"""

from __future__ import annotations

import inspect
import itertools
import json
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from compressor.errors import UserError
from compressor.layout import package_root

ENGINES = ("pytorch", "pytorch-compile", "onnxruntime")
DEVICES = ("cpu", "cuda")
PRECISIONS = ("fp32", "fp16")
ORT_PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
REQUIRED = ("model_path", "engine", "batch", "seq_len", "threads", "warmup", "iters")
DEV = "dev"
SEED = 0
# BERT-family vocabularies keep special and [unusedN] tokens below id 1000; real word pieces
# above it give the attention the same work as real text. Tiny test vocabularies have no such
# block, so only their 5 specials ([PAD] [UNK] [CLS] [SEP] [MASK]) are skipped.
REAL_TOKEN_START = 1000
SMALL_VOCAB_TOKEN_START = 5

Feeds = dict[str, np.ndarray]


def _check_args(args: dict[str, Any]) -> None:
    missing = [key for key in REQUIRED if key not in args]
    if missing:
        raise UserError(f"latency worker args lack {missing} — pass all of {list(REQUIRED)}")
    if args["engine"] not in ENGINES:
        raise UserError(f"unknown engine {args['engine']!r} — use one of {list(ENGINES)}")
    if args.get("device", "cpu") not in DEVICES:
        raise UserError(f"unknown device {args['device']!r} — use one of {list(DEVICES)}")
    if args.get("precision", "fp32") not in PRECISIONS:
        raise UserError(f"unknown precision {args['precision']!r} — use one of {PRECISIONS}")
    if args.get("ort_provider", "cpu") not in ORT_PROVIDERS:
        raise UserError(
            f"unknown ort_provider {args['ort_provider']!r} — use one of {list(ORT_PROVIDERS)}"
        )
    for key in ("batch", "threads", "iters"):
        if not isinstance(args[key], int) or args[key] < 1:
            raise UserError(f"{key}={args[key]!r} is not a positive integer — pass one >= 1")
    if args["seq_len"] == DEV:
        lengths = args.get("lengths")
        if not lengths or not all(isinstance(n, int) and n >= 1 for n in lengths):
            raise UserError("seq_len 'dev' needs lengths: the token count of each dev sentence")
    elif not isinstance(args["seq_len"], int) or args["seq_len"] < 1:
        raise UserError(f"seq_len={args['seq_len']!r} is not a positive integer or 'dev'")
    if not isinstance(args["warmup"], int) or args["warmup"] < 0:
        raise UserError(f"warmup={args['warmup']!r} is negative — pass an integer >= 0")


def _first_token(vocab_size: int) -> int:
    start = REAL_TOKEN_START if vocab_size > 2 * REAL_TOKEN_START else SMALL_VOCAB_TOKEN_START
    if vocab_size <= start:
        raise UserError(f"vocab_size {vocab_size} is too small — the model needs > {start} ids")
    return start


def synthetic_inputs(vocab_size: int, batch: int, seq_len: int, names: list[str]) -> Feeds:
    """Exactly batch x seq_len int64 inputs, seeded so every engine and round sees the same ids.

    No padding on purpose: a full mask makes every model do the work its shape promises, so
    the teacher/student ratio compares compute, not how much padding each happened to skip.
    """
    return padded_batch(vocab_size, [seq_len] * batch, names, np.random.default_rng(SEED))


def padded_batch(
    vocab_size: int, lengths: list[int], names: list[str], rng: np.random.Generator
) -> Feeds:
    """One batch of random word pieces with these real lengths, padded to the longest."""
    start = _first_token(vocab_size)
    width = max(lengths)
    shape = (len(lengths), width)
    mask = (np.arange(width)[None, :] < np.asarray(lengths)[:, None]).astype(np.int64)
    makers: dict[str, Callable[[], np.ndarray]] = {
        "input_ids": lambda: rng.integers(start, vocab_size, size=shape, dtype=np.int64) * mask,
        "attention_mask": lambda: mask,
        "token_type_ids": lambda: np.zeros(shape, dtype=np.int64),
    }
    unknown = [name for name in names if name not in makers]
    if unknown:
        raise UserError(
            f"the model expects inputs {unknown} — only {list(makers)} can be synthesised; "
            "export a plain sequence classifier"
        )
    return {name: makers[name]() for name in names}


def traffic_batches(
    vocab_size: int, batch: int, lengths: list[int], names: list[str], count: int
) -> list[Feeds]:
    """`count` batches of consecutive dev sentences (cycling), each padded to its longest.

    This is what a server that batches requests as they come and pads dynamically sees: the
    dev set's own length distribution, short sentences paying for the longest of their batch.
    """
    rng = np.random.default_rng(SEED)
    stream = itertools.cycle(lengths)
    return [
        padded_batch(vocab_size, list(itertools.islice(stream, batch)), names, rng)
        for _ in range(count)
    ]


def workload(args: dict[str, Any], vocab_size: int, names: list[str]) -> list[Feeds]:
    """The batches the timed calls cycle through: one fixed shape, or the dev traffic."""
    if args["seq_len"] == DEV:
        count = min(args["warmup"] + args["iters"], -(-len(args["lengths"]) // args["batch"]))
        return traffic_batches(vocab_size, args["batch"], args["lengths"], names, count)
    return [synthetic_inputs(vocab_size, args["batch"], args["seq_len"], names)]


def _check_seq_len(config: dict[str, Any], args: dict[str, Any]) -> None:
    """Fail with the limit instead of an index error deep inside the embedding layer."""
    limit = config.get("max_position_embeddings")
    longest = max(args["lengths"]) if args["seq_len"] == DEV else args["seq_len"]
    if limit is not None and longest > limit:
        raise UserError(
            f"seq_len {longest} exceeds the model's max_position_embeddings {limit} — "
            f"benchmark with seq_len <= {limit}"
        )


def _time_calls(call: Callable[[int], object], warmup: int, iters: int) -> list[float]:
    """Call i runs batch i of the workload (the callee cycles); only the timed calls count."""
    for i in range(warmup):
        call(i)
    samples_ms: list[float] = []
    for i in range(warmup, warmup + iters):
        start = time.perf_counter()
        call(i)
        samples_ms.append((time.perf_counter() - start) * 1000.0)
    return samples_ms


def device_info(device: str) -> dict[str, str]:
    """What the figures were measured on: the CPU model, or the GPU and its driver."""
    if device == "cuda":
        try:
            line = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, check=True, timeout=30,
            ).stdout.splitlines()[0]  # fmt: skip
            name, driver = (part.strip() for part in line.split(",", 1))
            return {"device_name": name, "driver": driver}
        except (OSError, subprocess.SubprocessError, IndexError, ValueError):
            return {"device_name": "unknown GPU", "driver": "unknown"}
    cpuinfo = Path("/proc/cpuinfo")
    name = platform.processor() or platform.machine()
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return {"device_name": f"{name} ({platform.machine()})", "driver": ""}


def _run_pytorch(args: dict[str, Any]) -> tuple[list[float], str, str, float | None]:
    import torch

    from compressor.models import load_saved_classifier

    model_dir = Path(args["model_path"])
    if not (model_dir / "config.json").is_file():
        raise UserError(f"{model_dir} has no config.json — pass a Hugging Face model folder")
    device = args.get("device", "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("PyTorch sees no CUDA device — run on a GPU machine or --target cpu")
    # Pinned before the model exists, so no pool is ever created with the default size.
    torch.set_num_threads(args["threads"])
    torch.set_num_interop_threads(1)
    model = load_saved_classifier(model_dir).eval().to(device)
    if args.get("precision", "fp32") == "fp16":
        model = model.half()
    _check_seq_len(model.config.to_dict(), args)
    accepted = inspect.signature(model.forward).parameters
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in accepted]
    batches = [
        {name: torch.from_numpy(arr).to(device) for name, arr in feeds.items()}
        for feeds in workload(args, model.config.vocab_size, names)
    ]
    forward = torch.compile(model) if args["engine"] == "pytorch-compile" else model
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def call(i: int) -> object:
        logits = forward(**batches[i % len(batches)]).logits
        sync()
        return logits

    with torch.inference_mode():
        samples = _time_calls(call, args["warmup"], args["iters"])
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
    return samples, f"torch-{device}", torch.__version__, peak


ORT_INT_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}


def _ort_session(model_path: Path, args: dict[str, Any]) -> Any:
    """A session on the asked provider, refused (not silently CPU) when it is not there."""
    import onnxruntime as ort

    wanted = ORT_PROVIDERS[args.get("ort_provider", "cpu")]
    if wanted not in ort.get_available_providers():
        raise UserError(
            f"this onnxruntime has no {wanted} (it has {ort.get_available_providers()}) — "
            "install onnxruntime-gpu for CUDA / TensorRT, or benchmark --target cpu"
        )
    chain = list(dict.fromkeys([wanted, "CUDAExecutionProvider", "CPUExecutionProvider"]))
    providers = [p for p in chain if p in ort.get_available_providers()]
    if wanted == "CPUExecutionProvider":
        providers = [wanted]
    options = ort.SessionOptions()
    options.intra_op_num_threads = args["threads"]
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(model_path), sess_options=options, providers=providers)
    if session.get_providers()[0] != wanted:
        raise UserError(f"onnxruntime fell back from {wanted} to {session.get_providers()[0]}")
    return session


def _run_onnxruntime(args: dict[str, Any]) -> tuple[list[float], str, str, float | None]:
    import onnxruntime as ort

    model_path = Path(args["model_path"])
    if not model_path.is_file():
        # A folder is refused rather than guessed: model.onnx and model_int8.onnx share one.
        raise UserError(f"{model_path} is not an ONNX file — pass the path of the .onnx file")
    config_path = package_root(model_path) / "config.json"
    if not config_path.is_file():
        raise UserError(
            f"no config.json for {model_path} — keep the exported model's config.json at the "
            "root of its ONNX folder (the vocab size comes from it)"
        )
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if "vocab_size" not in config:
        raise UserError(f"{config_path} has no vocab_size — copy the model's config.json there")
    _check_seq_len(config, args)
    session = _ort_session(model_path, args)
    declared = session.get_inputs()
    batches = [
        {i.name: feeds[i.name].astype(ORT_INT_TYPES.get(i.type, np.int64)) for i in declared}
        for feeds in workload(args, int(config["vocab_size"]), [i.name for i in declared])
    ]
    if args.get("device", "cpu") == "cuda":
        call = _io_bound_calls(session, batches)
    else:

        def call(i: int) -> object:
            return session.run(None, batches[i % len(batches)])

    samples = _time_calls(call, args["warmup"], args["iters"])
    return samples, session.get_providers()[0], ort.__version__, None


def _io_bound_calls(session: Any, batches: list[Feeds]) -> Callable[[int], object]:
    """GPU calls with inputs already on the device (IO binding), so the timing is the model's
    and not the host-to-device copy of the ids; outputs stay on the device until synced."""
    import onnxruntime as ort

    bindings = []
    for feeds in batches:
        binding = session.io_binding()
        for name, arr in feeds.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(arr, "cuda", 0))
        for out in session.get_outputs():
            binding.bind_output(out.name, "cuda")
        bindings.append(binding)

    def call(i: int) -> object:
        binding = bindings[i % len(bindings)]
        session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        return binding

    return call


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
    runner = _run_onnxruntime if args["engine"] == "onnxruntime" else _run_pytorch
    samples, provider, version, peak_device_mb = runner(args)
    device = args.get("device", "cpu")
    return {
        "engine": args["engine"],
        "model_path": str(args["model_path"]),
        "batch": args["batch"],
        "seq_len": args["seq_len"],
        "threads": args["threads"],
        "device": device,
        "precision": args.get("precision", "fp32"),
        "provider": provider,
        "engine_version": version,
        **device_info(device),
        "samples_ms": samples,
        "peak_rss_mb": _peak_rss_mb(),
        "peak_device_mb": peak_device_mb,
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
