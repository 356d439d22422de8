"""benchmark --remote: the whole SSH path against stand-ins for `ssh` and `scp` that run the
commands on this machine (no network here), so staging, the per-round worker processes on
the "device", the figures coming back and the clean-up are all exercised for real."""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import warnings
from pathlib import Path

import pytest
from optimum.exporters.onnx import main_export

from benchmarks.report import Report, render_markdown
from benchmarks.targets import Artifacts, get_target
from benchmarks.targets.remote import stage
from compressor.errors import UserError
from compressor.layout import package_root
from compressor.recipe import BenchmarkConfig
from tests.conftest import save_variant

FAKE_SSH = r"""#!/usr/bin/env bash
{ printf 'ssh %s' "$*" | tr '\n' ' '; echo; } >> "$FAKE_SSH_LOG"  # one line a call
while [[ $1 == -o ]]; do shift 2; done
host=$1; shift
if [[ $host == unreachable* ]]; then
  echo "ssh: Could not resolve hostname $host: Name or service not known" >&2; exit 255
fi
exec bash -c "$*"
"""
FAKE_SCP = r"""#!/usr/bin/env bash
echo "scp $*" >> "$FAKE_SSH_LOG"
args=()
while (($#)); do case $1 in -o) shift 2;; -q|-r) shift;; *) args+=("$1"); shift;; esac; done
dest=${args[-1]}
cp -r "${args[@]:0:${#args[@]}-1}" "${dest#*:}"
"""
NO_ORT_PYTHON = """#!/bin/sh
echo "ModuleNotFoundError: No module named 'onnxruntime'" >&2
exit 1
"""


def _export(model_dir: Path, out: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer chatter from the export, not from our code
        main_export(str(model_dir), output=str(out), task="text-classification", opset=17,
                    do_validation=False)  # fmt: skip
    return out / "model.onnx"


@pytest.fixture(scope="module")
def arts(tiny_teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Artifacts:
    out = tmp_path_factory.mktemp("remote_models")
    student = save_variant(tiny_teacher_dir, out / "student", seed=1, num_hidden_layers=1)
    return Artifacts(
        teacher_dir=tiny_teacher_dir,
        teacher_onnx=_export(tiny_teacher_dir, out / "teacher_onnx"),
        student_dir=student,
        student_onnx=_export(student, out / "student_onnx"),
    )


@pytest.fixture()
def fake_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`ssh` / `scp` first on PATH; returns the log of every call they got."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("ssh", FAKE_SSH), ("scp", FAKE_SCP)):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "ssh.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SSH_LOG", str(log))
    return log


def _cfg(**changes: object) -> BenchmarkConfig:
    settings = {"target": "arm", "arm_mode": "measured", "remote": "pi@board",
                "remote_python": sys.executable, "batches": [1, 2], "seq_lens": [16],
                "threads": [1], "warmup": 1, "iters": 3, "rounds": 2}  # fmt: skip
    return BenchmarkConfig(**{**settings, **changes})


def test_remote_device_times_the_copied_files_and_is_left_clean(
    arts: Artifacts, fake_ssh: Path
) -> None:
    section = get_target("arm").measure(arts, _cfg(), cores=1, lengths=None)
    result = section.record()
    assert result["mode"] == "measured" and result["remote"] == "pi@board"
    assert result["machine"] == platform.machine()
    assert result["device"]["cores"] == os.cpu_count()
    labels = [(r["label"], r["batch"]) for r in result["results"]]
    assert labels == [("teacher ONNX", 1), ("student ONNX", 1), ("teacher ONNX", 2),
                      ("student ONNX", 2)]  # fmt: skip
    for r in result["results"]:
        assert r["n_samples"] == 6 and len(r["round_p50s_ms"]) == 2, r["label"]
        assert r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] and r["threads"] == 1
        assert r["model_path"] in (str(arts.teacher_onnx), str(arts.student_onnx))
    pairs = {(s["baseline"], s["candidate"], s["batch"]) for s in result["speedups"]}
    assert pairs == {("teacher ONNX", "student ONNX", 1), ("teacher ONNX", "student ONNX", 2)}

    calls = fake_ssh.read_text().splitlines()
    assert all("BatchMode=yes" in c and "pi@board" in c for c in calls)
    (copy,) = [c for c in calls if c.startswith("scp ")]
    root = re.search(r"pi@board:(\S+)/$", copy).group(1)
    workers = [c for c in calls if "benchmarks.latency_worker" in c]
    assert len(workers) == 2 * 2 * 2  # variants x batches x rounds, each its own process
    assert all(f"{root}/stage/models/" in c and "OMP_NUM_THREADS=1" in c for c in workers)
    assert not Path(root).exists(), "the device's temporary folder must be removed"

    md = render_markdown(Report(benchmarks={"benchmark_arm_measured": section}))
    assert "## ARM (measured)" in md and "Measured on the device pi@board over SSH" in md
    if platform.machine() not in ("aarch64", "arm64"):  # this "device" is the test machine
        assert f"WARNING: pi@board is {platform.machine()}, not ARM" in md


def test_staged_runner_is_what_the_device_imports(arts: Artifacts, tmp_path: Path) -> None:
    placed = stage(arts.onnx_files(), tmp_path / "stage")
    runner = tmp_path / "stage" / "runner"
    assert sorted(p.relative_to(runner).as_posix() for p in runner.rglob("*.py")) == [
        "benchmarks/__init__.py", "benchmarks/latency_worker.py",
        "compressor/__init__.py", "compressor/errors.py", "compressor/layout.py",
    ]  # fmt: skip
    for local, rel in placed.items():
        copied = tmp_path / "stage" / rel
        assert copied.read_bytes() == local.read_bytes()
        config = json.loads((copied.parent / "config.json").read_text())
        assert (
            config["vocab_size"]
            == json.loads((package_root(local) / "config.json").read_text())["vocab_size"]
        )


def test_unreachable_device_is_one_line_with_the_fix(arts: Artifacts, fake_ssh: Path) -> None:
    with pytest.raises(UserError, match=r"cannot reach unreachable\.example over SSH") as err:
        get_target("arm").measure(arts, _cfg(remote="unreachable.example"), cores=1, lengths=None)
    assert "Could not resolve hostname" in str(err.value)
    assert "`ssh unreachable.example true`" in str(err.value)
    assert not any(c.startswith("scp") for c in fake_ssh.read_text().splitlines())


def test_device_without_onnxruntime_says_what_to_install(
    arts: Artifacts, fake_ssh: Path, tmp_path: Path
) -> None:
    python = tmp_path / "python-without-ort"
    python.write_text(NO_ORT_PYTHON)
    python.chmod(0o755)
    with pytest.raises(UserError, match="pip install onnxruntime") as err:
        get_target("arm").measure(arts, _cfg(remote_python=str(python)), cores=1, lengths=None)
    assert "No module named 'onnxruntime'" in str(err.value)
    assert not any(c.startswith("scp") for c in fake_ssh.read_text().splitlines())


def test_missing_ssh_client_is_refused(
    arts: Artifacts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError, match="needs ssh and scp"):
        get_target("arm").measure(arts, _cfg(), cores=1, lengths=None)
