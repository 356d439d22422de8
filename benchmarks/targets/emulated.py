"""ARM under emulation: the aarch64 ONNX Runtime build run on our files with qemu-user.

What it answers is whether the files load and compute the same logits on ARM's kernels (NEON,
int8 dot-product paths, the `.ort` format a phone would ship) as on this machine, for several
emulated cores. What it cannot answer is how fast: emulated runs are 70-330x slower than a
device and distort rankings (int8 looked 5-6x faster than fp32 under emulation, 1.6x natively),
so its timings carry `_emulated` in their names and never sit where a device figure goes.

The root (`make arm-root`, see `build_arm_root`) holds a static qemu-aarch64 from Debian 13
(Debian 12's qemu 7.2 crashes on `import onnxruntime`: it shows ORT the host's x86
/proc/cpuinfo), a Debian 12 arm64 minbase with python3, and the aarch64 onnxruntime wheel of
the version installed here in its own site folder.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from benchmarks.targets import Artifacts
from compressor.errors import UserError
from compressor.recipe import BenchmarkConfig
from compressor.runfolder import cache_root

# Cores that take different kernel paths: A55 and A76 (phones, Raspberry Pi 5) have int8 dot
# product (SDOT), A72 (Raspberry Pi 4) has not, `max` adds i8mm and SVE, whose int8 path rounds
# differently (logits 0.07 apart on the demo's int8 student, against 0.006 for the others).
CPUS = ("cortex-a55", "cortex-a72", "cortex-a76", "max")
NOTE = (
    "emulated timings: functional check only, 70-330x slower than a device, never a device figure"
)
N_SAMPLES = 4
SEQ_LEN = 16
SEED = 0
ITERS = 5
TIMEOUT_S = 900
ATOL = 1e-3
QUANTIZED_OPS = {
    "MatMulInteger",
    "DynamicQuantizeLinear",
    "QuantizeLinear",
    "QLinearMatMul",
    "MatMulNBits",
    "GatherBlockQuantized",
}
ROOT_MANIFEST = "root.json"
console = Console(stderr=True)
TRIXIE_SOURCE = (
    "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
    "http://deb.debian.org/debian trixie main\n"
)
BOOTSTRAP_SUITE = "bookworm"


@dataclass(frozen=True)
class ArmRoot:
    """The folder `build_arm_root` fills, and how to run its python under qemu."""

    folder: Path

    @property
    def qemu(self) -> Path:
        return self.folder / "bin" / "qemu-aarch64"

    @property
    def sysroot(self) -> Path:
        return self.folder / "sysroot"

    @property
    def site(self) -> Path:
        return self.folder / "site"

    @property
    def manifest(self) -> dict[str, str]:
        return json.loads((self.folder / ROOT_MANIFEST).read_text(encoding="utf-8"))

    @property
    def python(self) -> Path:
        return self.sysroot / "usr" / "bin" / f"python{self.manifest['python']}"

    def command(self, cpu: str) -> list[str]:
        """-L makes qemu look up the loader and libraries in the root first, host paths
        (the script, the model files) still resolve because missing ones fall through."""
        return [str(self.qemu), "-cpu", cpu, "-L", str(self.sysroot), str(self.python)]

    def env(self) -> dict[str, str]:
        """The host's PYTHON* variables point at x86 packages, so none of them go through."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        return {**env, "PYTHONPATH": str(self.site), "PYTHONNOUSERSITE": "1"}

    def cpus(self) -> list[str]:
        """The cores of CPUS this qemu knows (older ones lack some). `-cpu help` exits 1
        after listing, so its status says nothing."""
        listing = subprocess.run(
            [str(self.qemu), "-cpu", "help"], capture_output=True, text=True, check=False
        ).stdout
        known = {line.strip() for line in listing.splitlines() if line.startswith("  ")}
        return [cpu for cpu in CPUS if cpu in known]


def host_onnxruntime() -> str:
    import onnxruntime

    return onnxruntime.__version__


def find_root(arm_root: str | None) -> ArmRoot:
    """The built root, checked before any file is touched: a root without the manifest is a
    build that stopped halfway, and one for another ORT version would test the wrong build."""
    folder = Path(arm_root).expanduser() if arm_root else cache_root() / "arm64-root"
    root = ArmRoot(folder)
    if not (folder / ROOT_MANIFEST).is_file():
        raise UserError(
            f"no arm64 emulation root at {folder} — run `make arm-root` first "
            f"(or `python -m benchmarks.targets.emulated build {folder}`)"
        )
    built, here = root.manifest["onnxruntime"], host_onnxruntime()
    if built != here:
        raise UserError(
            f"the arm64 root at {folder} has onnxruntime {built}, this environment {here} — "
            "run `make arm-root` again"
        )
    return root


def build_arm_root(folder: Path) -> ArmRoot:
    """Build (or bring up to date) the emulation root; each step is skipped when done, and the
    manifest stays only once the root imports onnxruntime, so that a build that stopped or
    broke is never taken for a root."""
    missing = [tool for tool in ("apt-get", "dpkg", "debootstrap") if not shutil.which(tool)]
    if missing:
        raise UserError(
            f"building the arm64 root needs {', '.join(missing)} — on Debian or Ubuntu: "
            "`apt-get install debootstrap`"
        )
    if os.geteuid() != 0:
        raise UserError("debootstrap needs root — run `make arm-root` as root")
    folder = folder.expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ROOT_MANIFEST).unlink(missing_ok=True)
    root = ArmRoot(folder)
    qemu_version = _fetch_qemu(folder)
    python = _bootstrap(root.sysroot)
    ort_version = host_onnxruntime()
    _install_onnxruntime(root.site, python, ort_version)
    manifest = {
        "qemu": qemu_version,
        "python": python,
        "onnxruntime": ort_version,
        "numpy": _dist_version(root.site, "numpy"),
        "suite": BOOTSTRAP_SUITE,
    }
    (folder / ROOT_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    check = subprocess.run(
        [*root.command("cortex-a76"), "-c", "import onnxruntime; print(onnxruntime.__file__)"],
        env=root.env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if check.returncode != 0:
        (folder / ROOT_MANIFEST).unlink()
        raise RuntimeError(f"the new root cannot import onnxruntime:\n{check.stderr[-2000:]}")
    return root


def _fetch_qemu(folder: Path) -> str:
    """qemu-user from Debian 13 (static binaries, so they run on this release), fetched with
    apt through a private source list and state: the system's apt setup stays untouched. Only
    qemu-aarch64 is kept, not the package's 450 MB of other targets."""
    qemu = ArmRoot(folder).qemu
    if not qemu.is_file():
        state = folder / "apt"
        for sub in ("lists/partial", "cache/archives/partial"):
            (state / sub).mkdir(parents=True, exist_ok=True)
        (state / "sources.list").write_text(TRIXIE_SOURCE, encoding="utf-8")
        options = [
            *("-o", f"Dir::Etc::sourcelist={state / 'sources.list'}"),
            *("-o", "Dir::Etc::sourceparts=-"),
            *("-o", f"Dir::State::Lists={state / 'lists'}"),
            *("-o", f"Dir::Cache={state / 'cache'}"),
            *("-o", "APT::Sandbox::User=root"),
        ]
        subprocess.run(["apt-get", *options, "-qq", "update"], check=True)
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            subprocess.run(
                ["apt-get", *options, "-qq", "download", "qemu-user"], cwd=tmp, check=True
            )
            deb = next(Path(tmp).glob("qemu-user_*.deb"))
            subprocess.run(["dpkg", "-x", str(deb), str(Path(tmp) / "x")], check=True)
            qemu.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(Path(tmp) / "x" / "usr" / "bin" / "qemu-aarch64", qemu)
    version = subprocess.run(
        [str(qemu), "--version"], capture_output=True, text=True, check=True
    ).stdout
    return version.splitlines()[0].removeprefix("qemu-aarch64 version ")


def _bootstrap(sysroot: Path) -> str:
    """Debian arm64 minbase with python3. `--foreign` only unpacks the base set without
    running any maintainer script (which would need arm64 execution); `dpkg -x` of the
    downloaded packages adds the rest, python included. Returns the python version."""
    if not _root_pythons(sysroot):
        shutil.rmtree(sysroot, ignore_errors=True)
        subprocess.run(
            [
                "debootstrap",
                "--foreign",
                "--arch=arm64",
                "--variant=minbase",
                "--include=python3",
                BOOTSTRAP_SUITE,
                str(sysroot),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        for deb in sorted((sysroot / "var" / "cache" / "apt" / "archives").glob("*.deb")):
            subprocess.run(["dpkg", "-x", str(deb), str(sysroot)], check=True)
    versions = _root_pythons(sysroot)
    if not versions:
        raise RuntimeError(f"debootstrap left no python3.X in {sysroot}/usr/bin")
    return versions[-1]


def _root_pythons(sysroot: Path) -> list[str]:
    found = []
    for path in (sysroot / "usr" / "bin").glob("python3.*"):
        match = re.fullmatch(r"python(3\.\d+)", path.name)
        if match:
            found.append(match.group(1))
    return sorted(found, key=lambda v: int(v.split(".")[1]))


def _install_onnxruntime(site: Path, python: str, version: str) -> None:
    """The aarch64 wheels (onnxruntime and its numpy) for the root's python, not Debian's
    numpy: that one needs BLAS alternatives that only maintainer scripts set up."""
    if _dist_version(site, "onnxruntime") == version:
        return
    shutil.rmtree(site, ignore_errors=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--target",
            str(site),
            "--platform",
            "manylinux_2_28_aarch64",
            "--only-binary=:all:",
            "--implementation",
            "cp",
            "--python-version",
            python,
            f"onnxruntime=={version}",
        ],
        check=True,
    )


def _dist_version(site: Path, name: str) -> str | None:
    for info in site.glob(f"{name}-*.dist-info"):
        return info.name.removeprefix(f"{name}-").removesuffix(".dist-info")
    return None


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
    decision (argmax), float files on the logits as well."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    return any(node.op_type in QUANTIZED_OPS for node in graph.node)


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


def measure_emulated(arts: Artifacts, cfg: BenchmarkConfig) -> dict[str, Any]:
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
            for fmt, path in model_files(onnx_path):
                args = {"model": str(path), "inputs": str(inputs), "threads": 1, "iters": ITERS}
                host = run_runner([sys.executable], script, args)
                for cpu in cpus:
                    console.print(f"emulating {label} ({fmt}) on {cpu}", highlight=False)
                    emulated = run_runner(root.command(cpu), script, args, env=root.env())
                    results.append(
                        {
                            "label": label,
                            "file": str(path),
                            "format": fmt,
                            "cpu": cpu,
                            "batch": 1,
                            "seq_len": SEQ_LEN,
                            "threads": 1,
                            **check_row(host, emulated, tolerance=tolerance),
                        }
                    )
    return {
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
