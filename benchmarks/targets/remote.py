"""ARM measured on a real device over SSH (`benchmark --remote user@host`).

A phone-class board is where the figures a mobile deployment needs come from, and the device
usually has nothing of ours on it. So the ONNX files (each with its config.json) and the
latency worker, which needs only numpy and onnxruntime there, are copied to a temporary folder
on the device; every (model, round) is one fresh `python3 -m benchmarks.latency_worker`
process started over SSH, rounds interleaved A B A B as on this machine, so the device's own
ONNX Runtime does the timing and only the JSON comes back. The folder is removed afterwards.

SSH runs with BatchMode (key-based login, never a password prompt that would hang a run) and
the user's own ssh configuration (ports, jump hosts, keys in ~/.ssh/config).
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.latency import THREAD_VARS, Variant, Worker, speedups, worker_result
from benchmarks.targets import Artifacts
from benchmarks.targets.cpu import comparison_pairs, time_variants
from benchmarks.targets.sections import LatencySection, latency_section
from compressor.errors import UserError
from compressor.layout import package_root
from compressor.recipe import BenchmarkConfig

PROJECT = Path(__file__).resolve().parents[2]
# What the worker imports on the device: itself and the error type it raises.
RUNNER_FILES = ("benchmarks/latency_worker.py", "compressor/errors.py", "compressor/layout.py")
SSH_OPTIONS = ("-o", "BatchMode=yes", "-o", "ConnectTimeout=20")
SSH_UNREACHABLE = 255
ARM_MACHINES = ("aarch64", "arm64", "armv7l", "armv8l")
CALL_TIMEOUT_S = 1800
PROBE = (
    "import json, os, platform, numpy, onnxruntime\n"
    "model = ''\n"
    "for path in ('/proc/device-tree/model', '/sys/firmware/devicetree/base/model'):\n"
    "    if os.path.isfile(path):\n"
    "        model = open(path, 'rb').read().rstrip(b'\\0').decode(errors='replace')\n"
    "        break\n"
    "print(json.dumps({'machine': platform.machine(), 'cores': os.cpu_count() or 1,\n"
    "    'model': model, 'python': platform.python_version(),\n"
    "    'onnxruntime': onnxruntime.__version__, 'numpy': numpy.__version__}))\n"
)


@dataclass(frozen=True)
class Remote:
    """One SSH destination and the python on it that has onnxruntime."""

    host: str
    python: str = "python3"

    def run(
        self, command: str, *, timeout: float = CALL_TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        """A shell command on the device; an unreachable device is the user's to fix."""
        try:
            proc = subprocess.run(
                ["ssh", *SSH_OPTIONS, self.host, command],
                capture_output=True,
                text=True,
                check=False,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise UserError(
                f"{self.host} did not answer within {timeout:.0f} s over SSH — check that the "
                "device is up and not busy, then rerun"
            ) from None
        if proc.returncode == SSH_UNREACHABLE:
            raise UserError(
                f"cannot reach {self.host} over SSH ({_last_line(proc.stderr)}) — check the "
                f"address and that key-based login works: `ssh {self.host} true`"
            )
        return proc

    def copy(self, local: Path, remote_dir: str) -> None:
        proc = subprocess.run(
            ["scp", *SSH_OPTIONS, "-q", "-r", str(local), f"{self.host}:{remote_dir}/"],
            capture_output=True,
            text=True,
            check=False,
            timeout=CALL_TIMEOUT_S,
        )
        if proc.returncode != 0:
            raise UserError(
                f"copying the models to {self.host}:{remote_dir} failed "
                f"({_last_line(proc.stderr)}) — check free space and write access on the device"
            )


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def check_tools() -> None:
    missing = [tool for tool in ("ssh", "scp") if shutil.which(tool) is None]
    if missing:
        raise UserError(
            f"benchmark --remote needs {' and '.join(missing)} on this machine — install the "
            "OpenSSH client (Debian / Ubuntu: `apt-get install openssh-client`)"
        )


def probe(remote: Remote) -> dict[str, Any]:
    """What the device is and whether its python can run the worker, before anything is
    copied: a missing onnxruntime there is the usual first-run problem."""
    proc = remote.run(f"{shlex.quote(remote.python)} -c {shlex.quote(PROBE)}", timeout=120)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        raise UserError(
            f"{remote.python} on {remote.host} cannot run the latency worker "
            f"({_last_line(proc.stderr)}) — install them there (`pip install onnxruntime "
            "numpy`), or point benchmark.remote_python at a python that has them"
        )
    return json.loads(lines[-1])


def stage(files: dict[str, Path], folder: Path) -> dict[Path, str]:
    """The worker and every ONNX file (with the config.json it reads the vocabulary from)
    laid out under `folder`; returns local file -> path relative to the staged folder."""
    for name in RUNNER_FILES:
        target = folder / "runner" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT / name, target)
        (target.parent / "__init__.py").touch()
    placed: dict[Path, str] = {}
    for i, path in enumerate(files.values()):
        config = package_root(path) / "config.json"
        if not config.is_file():
            raise UserError(
                f"no config.json for {path} — keep the exported model's config.json at the "
                "root of its ONNX folder"
            )
        target = folder / "models" / str(i)
        target.mkdir(parents=True)
        shutil.copy2(path, target / path.name)
        shutil.copy2(config, target / "config.json")
        placed[path] = f"models/{i}/{path.name}"
    return placed


def remote_worker(remote: Remote, base: str, placed: dict[Path, str]) -> Worker:
    """A run_latency worker that starts each (model, round) as its own process on the
    device, with the same pinned thread pools as a local worker."""

    def run(variant: Variant, args: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
        remote_args = {**args, "model_path": f"{base}/{placed[Path(variant.model_path)]}"}
        pins = " ".join(f"{name}={env[name]}" for name in THREAD_VARS)
        command = (
            f"cd {shlex.quote(base + '/runner')} && {pins} {shlex.quote(remote.python)} "
            f"-m benchmarks.latency_worker {shlex.quote(json.dumps(remote_args))}"
        )
        result = worker_result(variant, remote_args, remote.run(command))
        return {**result, "model_path": str(variant.model_path)}

    return run


def measure_remote(
    arts: Artifacts, cfg: BenchmarkConfig, *, lengths: Sequence[int] | None
) -> LatencySection:
    """Teacher and student ONNX files timed on the device itself: figures labelled measured,
    with the device's name, cores and ONNX Runtime version."""
    if not cfg.remote:
        raise ValueError("measure_remote needs benchmark.remote")
    check_tools()
    remote = Remote(cfg.remote, cfg.remote_python)
    device = probe(remote)
    files = arts.onnx_files()
    made = remote.run("mktemp -d /tmp/compressor-bench.XXXXXX", timeout=120)
    if made.returncode != 0 or not made.stdout.strip():
        raise UserError(
            f"cannot create a folder in /tmp on {remote.host} ({_last_line(made.stderr)}) — "
            "free some space there"
        )
    root = made.stdout.strip().splitlines()[-1]
    base = f"{root}/stage"
    try:
        with tempfile.TemporaryDirectory(prefix="compressor-remote-") as tmp:
            placed = stage(files, Path(tmp) / "stage")
            remote.copy(Path(tmp) / "stage", root)
        threads = cfg.thread_counts(int(device["cores"]))
        variants = [Variant(label, path, "onnxruntime") for label, path in files.items()]
        worker = remote_worker(remote, base, placed)
        results = time_variants(variants, cfg, threads, lengths, worker)
    finally:
        remote.run(f"rm -rf {shlex.quote(root)}", timeout=120)
    name = device["model"] or (results[0].get("device_name") if results else None)
    arm = device["machine"] in ARM_MACHINES
    return latency_section(
        "arm",
        results,
        speedups(results, comparison_pairs(set(files), arts.quantized_label)),
        note=None
        if arm
        else f"{remote.host} is {device['machine']}, not ARM: these are "
        "that machine's figures, not a mobile device's",
        remote=remote.host,
        machine=device["machine"],
        device_name=name,
        device=device,
        threads=threads,
    )
