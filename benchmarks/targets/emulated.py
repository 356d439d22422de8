"""ARM under emulation: the aarch64 ONNX Runtime build run on our files with qemu-user.

What it answers is whether the files load and compute the same logits on ARM's kernels (NEON,
int8 dot-product paths, the `.ort` format a phone would ship) as on this machine, for several
emulated cores. What it cannot answer is how fast: emulated runs are 70-330x slower than a
device and distort rankings (int8 looked 5-6x faster than fp32 under emulation, 1.6x natively),
so its timings carry `_emulated` in their names and never sit where a device figure goes.

The emulation root is `benchmarks.targets.arm_root`'s; `python -m benchmarks.targets.emulated
build` (what `make arm-root` runs) builds it.
"""

from __future__ import annotations

import argparse
import inspect
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field
from rich.console import Console

from benchmarks.targets import Artifacts
from benchmarks.targets.arm_root import build_arm_root, find_root
from benchmarks.targets.sections import DASH, TIMES, BenchmarkSection, Block, Record, fmt, pct
from compressor.errors import UserError
from compressor.recipe import BenchmarkConfig
from compressor.runfolder import cache_root

NOTE = (
    "emulated timings: functional check only, 70-330x slower than a device, never a device figure"
)
N_SAMPLES = 4
SEQ_LEN = 16
SEED = 0
ITERS = 5
TIMEOUT_S = 900
ATOL = 1e-3
PASS = "\u2713"
FAIL = "\u2717"
console = Console(stderr=True)


def runner_main(argv: list[str]) -> None:
    """Runs inside the emulated python (numpy and onnxruntime only, no project code): the
    same source runs on the host for the reference, so both sides differ only in the build
    and the CPU. Prints one JSON line."""
    import json
    import platform
    import time

    import numpy as np
    import onnxruntime as ort

    args = json.loads(argv[0])
    options = ort.SessionOptions()
    options.intra_op_num_threads = args["threads"]
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    start = time.perf_counter()
    session = ort.InferenceSession(args["model"], options, providers=["CPUExecutionProvider"])
    load_ms = (time.perf_counter() - start) * 1e3
    with np.load(args["inputs"]) as data:
        feeds = {name: data[name] for name in data.files}
    output = session.get_outputs()[0].name
    rows = len(next(iter(feeds.values())))
    logits = []
    first_ms = []
    for i in range(rows):
        start = time.perf_counter()
        out = session.run([output], {name: value[i : i + 1] for name, value in feeds.items()})
        first_ms.append((time.perf_counter() - start) * 1e3)
        logits.append(out[0][0].astype(float).tolist())
    first = {name: value[:1] for name, value in feeds.items()}
    times_ms = []
    for _ in range(args["iters"]):
        start = time.perf_counter()
        session.run([output], first)
        times_ms.append((time.perf_counter() - start) * 1e3)
    features: list[str] = []
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith(("features", "flags")):
                    features = line.split(":", 1)[1].split()
                    break
    except OSError:
        pass
    result = {
        "machine": platform.machine(),
        "providers": session.get_providers(),
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "cpu_features": features,
        "threads": args["threads"],
        "logits": logits,
        "load_ms": load_ms,
        "first_call_ms": first_ms,
        "times_ms": times_ms,
        "p50_ms": float(np.median(times_ms)) if times_ms else None,
    }
    print(json.dumps(result))


def write_runner(folder: Path) -> Path:
    """runner_main as a standalone script: one source, linted and tested like the rest."""
    script = folder / "emulated_runner.py"
    source = textwrap.dedent(inspect.getsource(runner_main))
    script.write_text(f"import sys\n\n\n{source}\n\nrunner_main(sys.argv[1:])\n", encoding="utf-8")
    return script


def run_runner(
    command: list[str], script: Path, args: dict[str, Any], *, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """The runner's JSON, or {"error": ...}: a file that crashes or hangs on ARM is a finding
    of the check, not a reason to lose the other rows."""
    try:
        proc = subprocess.run(
            [*command, str(script), json.dumps(args)],
            capture_output=True,
            text=True,
            env=env,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"no answer within {TIMEOUT_S} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"error": f"exit {proc.returncode}: {proc.stderr.strip()[-1500:]}"}
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError:
        return {"error": f"not JSON: {lines[-1][:200]}"}


def fixed_inputs(onnx_path: Path) -> dict[str, np.ndarray]:
    """N_SAMPLES seeded sequences of SEQ_LEN with 0, 3, 6, ... padded positions, so masking is
    exercised; ids stay below the embedding's vocabulary read from the graph."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    graph = model.graph
    initializers = {init.name for init in graph.initializer}
    inputs = {
        i.name: onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type)
        for i in graph.input
        if i.name not in initializers
    }
    vocab = _vocab_size(graph) or 100
    rng = np.random.default_rng(SEED)
    ids = rng.integers(min(1000, vocab // 2), vocab, size=(N_SAMPLES, SEQ_LEN))
    mask = np.ones((N_SAMPLES, SEQ_LEN), dtype=np.int64)
    for i in range(1, N_SAMPLES):
        mask[i, SEQ_LEN - 3 * i :] = 0
    ids = ids * mask
    values = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    unknown = set(inputs) - set(values)
    if unknown:
        raise UserError(
            f"{onnx_path} has inputs {sorted(unknown)} besides input_ids / attention_mask / "
            "token_type_ids — emulate BERT-family classifiers exported by `compressor export`"
        )
    return {name: values[name].astype(dtype) for name, dtype in inputs.items()}


def _vocab_size(graph: Any) -> int | None:
    """Rows of the table input_ids index (through a DequantizeLinear when it is quantized)."""
    shapes = {init.name: list(init.dims) for init in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    for node in graph.node:
        if node.op_type in ("Gather", "GatherBlockQuantized") and node.input[1] == "input_ids":
            table = node.input[0]
            source = producers.get(table)
            if source is not None and source.op_type == "DequantizeLinear":
                table = source.input[0]
            if table in shapes:
                return int(shapes[table][0])
    return None


def is_quantized(onnx_path: Path) -> bool:
    """Integer kernels round differently per instruction set, so their files are judged on the
    decision (argmax), float files on the logits as well. Which mode made the file, and
    whether its kernels are integer ones, is that quantization mode's knowledge."""
    import onnx

    from exporters.quant import detect

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    mode = detect(node.op_type for node in graph.node)
    return mode is not None and mode.integer_kernels


def compare_logits(reference: list[list[float]], candidate: list[list[float]]) -> dict[str, Any]:
    ref, cand = np.asarray(reference, dtype=float), np.asarray(candidate, dtype=float)
    if ref.shape != cand.shape:
        raise ValueError(f"logits of shape {ref.shape} against {cand.shape}")
    return {
        "max_abs_diff": float(np.abs(ref - cand).max()),
        "argmax_agree": float(np.mean(ref.argmax(axis=1) == cand.argmax(axis=1))),
        "n": int(ref.shape[0]),
    }


def check_row(
    host: dict[str, Any], emulated: dict[str, Any], *, tolerance: float | None
) -> dict[str, Any]:
    """One file on one emulated core against the host: the check's verdict and its numbers,
    timings named so that no reader takes them for a device's."""
    if "error" in host or "error" in emulated:
        return {"passed": False, "error": emulated.get("error") or host.get("error")}
    agreement = compare_logits(host["logits"], emulated["logits"])
    close = tolerance is None or agreement["max_abs_diff"] <= tolerance
    p50 = emulated["p50_ms"]
    return {
        "machine": emulated["machine"],
        "providers": emulated["providers"],
        **agreement,
        "tolerance": tolerance,
        "passed": agreement["argmax_agree"] == 1.0 and close,
        "load_ms_emulated": emulated["load_ms"],
        "p50_ms_emulated": p50,
        "min_ms_emulated": min(emulated["times_ms"]),
        "host_p50_ms": host["p50_ms"],
        "emulation_slowdown": p50 / host["p50_ms"] if host["p50_ms"] else None,
        "cpu_features": emulated["cpu_features"],
    }


def model_files(onnx_path: Path) -> list[tuple[str, Path]]:
    """The ONNX file and the `.ort` a phone would ship, when `compressor export` wrote one."""
    files = [("onnx", onnx_path)]
    if onnx_path.with_suffix(".ort").is_file():
        files.append(("ort", onnx_path.with_suffix(".ort")))
    return files


class EmulatedRow(Record):
    """One file on one emulated core against this machine (`check_row`)."""

    label: str | None = None
    format: str | None = None
    cpu: str | None = None
    max_abs_diff: float | None = None
    argmax_agree: float | None = None
    passed: bool = False
    error: str | None = None
    p50_ms_emulated: float | None = None
    emulation_slowdown: float | None = None


class EmulatedSection(BenchmarkSection):
    """The functional check's verdict and rows; its times are emulated and say so."""

    cpus: list[str] = Field(default_factory=list)
    root: dict[str, Any] = Field(default_factory=dict)
    inputs: dict[str, Any] = Field(default_factory=dict)
    iters: int | None = None
    passed: bool = False
    results: list[EmulatedRow] = Field(default_factory=list)
    note: str = ""

    def block(self) -> Block:
        """The verdict leads and the emulated times are labelled as such: a reader must not
        take them for a device's."""
        lines = [
            f"Functional check under qemu-user: {'PASSED' if self.passed else 'FAILED'}. "
            f"{self.note}",
            f"qemu {self.root.get('qemu', DASH)}, onnxruntime "
            f"{self.root.get('onnxruntime', DASH)} (aarch64), inputs {self.inputs}",
        ]
        rows = [
            [
                str(r.label or DASH),
                str(r.format or DASH),
                str(r.cpu or DASH),
                fmt(r.max_abs_diff, ".1e"),
                pct(r.argmax_agree),
                PASS if r.passed else f"{FAIL} {r.error or ''}".strip(),
                fmt(r.p50_ms_emulated, ".1f"),
                DASH if r.emulation_slowdown is None else f"{r.emulation_slowdown:.0f}{TIMES}",
            ]
            for r in self.results
        ]
        headers = ["Model", "File", "Emulated CPU", "Max |\u0394| vs x86", "Argmax agreement",
                   "Passed", "p50 ms (EMULATED)", "Slower than host"]  # fmt: skip
        return Block("ARM (emulated, functional check)", lines, headers, rows)


def measure_emulated(arts: Artifacts, cfg: BenchmarkConfig) -> EmulatedSection:
    """Every ONNX (and .ort) file on every emulated core, against this machine's ORT on the
    same inputs. Batch 1, one thread and ITERS calls whatever the recipe asks: under
    emulation only correctness is worth the minutes."""
    root = find_root(cfg.arm_root)
    cpus = root.cpus()
    results = []
    with tempfile.TemporaryDirectory(prefix="compressor-emulated-") as tmp:
        script = write_runner(Path(tmp))
        for index, (label, onnx_path) in enumerate(arts.onnx_files().items()):
            inputs = Path(tmp) / f"inputs-{index}.npz"
            np.savez(inputs, **fixed_inputs(onnx_path))
            tolerance = None if is_quantized(onnx_path) else ATOL
            for kind, path in model_files(onnx_path):
                args = {"model": str(path), "inputs": str(inputs), "threads": 1, "iters": ITERS}
                host = run_runner([sys.executable], script, args)
                for cpu in cpus:
                    console.print(f"emulating {label} ({kind}) on {cpu}", highlight=False)
                    emulated = run_runner(root.command(cpu), script, args, env=root.env())
                    results.append(
                        {
                            "label": label,
                            "file": str(path),
                            "format": kind,
                            "cpu": cpu,
                            "batch": 1,
                            "seq_len": SEQ_LEN,
                            "threads": 1,
                            **check_row(host, emulated, tolerance=tolerance),
                        }
                    )
    return EmulatedSection.model_validate(
        {
            "target": "arm",
            "mode": "emulated",
            "cpus": cpus,
            "root": {"folder": str(root.folder), **root.manifest},
            "inputs": {"samples": N_SAMPLES, "batch": 1, "seq_len": SEQ_LEN, "seed": SEED},
            "iters": ITERS,
            "passed": bool(results) and all(row["passed"] for row in results),
            "results": results,
            "note": NOTE,
        }
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.targets.emulated")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="Build the arm64 emulation root.")
    build.add_argument("folder", type=Path, nargs="?", default=cache_root() / "arm64-root")
    args = parser.parse_args(argv)
    try:
        root = build_arm_root(args.folder)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"arm64 root ready: {root.folder} {json.dumps(root.manifest)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
