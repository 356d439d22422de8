"""Latency harness: statistics on known numbers, the worker on the tiny model, orchestration.

Nothing here asserts on how long anything took (the machine is shared and noisy): only
structure, counts, ordering of percentiles and arithmetic on given numbers.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from optimum.exporters.onnx import main_export

from benchmarks import latency
from benchmarks.latency import Variant, run_latency, speedups
from benchmarks.latency_worker import traffic_batches
from benchmarks.stats import ratio_with_spread, summarize
from compressor.errors import UserError

RESULT_KEYS = {
    "label",
    "engine",
    "model_path",
    "batch",
    "seq_len",
    "threads",
    "provider",
    "engine_version",
    "n_samples",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "mean_ms",
    "std_ms",
    "min_ms",
    "max_ms",
    "round_p50s_ms",
    "throughput_per_s",
    "peak_rss_mb",
    "device",
    "device_name",
    "driver",
    "precision",
    "peak_device_mb",
    "samples_ms",
}


@pytest.fixture(scope="module")
def tiny_onnx(tiny_teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny_onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer chatter from the export, not from our code
        main_export(
            str(tiny_teacher_dir),
            output=str(out),
            task="text-classification",
            opset=17,
            do_validation=False,
        )
    return out / "model.onnx"


def _worker(args: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.latency_worker", json.dumps(args)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_summarize_known_numbers() -> None:
    stats = summarize([float(x) for x in range(1, 101)])
    assert stats["p50"] == pytest.approx(50.5)
    assert stats["p90"] == pytest.approx(90.1)
    assert stats["p99"] == pytest.approx(99.01)
    assert stats["mean"] == pytest.approx(50.5)
    assert stats["std"] == pytest.approx(math.sqrt((100**2 - 1) / 12))
    assert (stats["min"], stats["max"], stats["n"]) == (1.0, 100.0, 100)


def test_summarize_rejects_no_samples() -> None:
    with pytest.raises(ValueError, match="at least one"):
        summarize([])


def test_ratio_pairs_rounds() -> None:
    # Per-round ratios 2, 3, 4. The ratio of medians would be 10 / 4 = 2.5: pairing matters.
    spread = ratio_with_spread([10.0, 12.0, 8.0], [5.0, 4.0, 2.0])
    assert spread == {"median": 3.0, "min": 2.0, "max": 4.0, "n": 3}


def test_ratio_rejects_unpaired_rounds() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        ratio_with_spread([1.0, 2.0], [1.0])


@pytest.mark.parametrize("engine", ["pytorch", "onnxruntime"])
def test_worker_times_tiny_model(engine: str, tiny_teacher_dir: Path, tiny_onnx: Path) -> None:
    model_path = tiny_teacher_dir if engine == "pytorch" else tiny_onnx
    args = {
        "model_path": str(model_path),
        "engine": engine,
        "batch": 2,
        "seq_len": 16,
        "threads": 1,
        "warmup": 1,
        "iters": 3,
    }
    proc = _worker(args)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert len(out["samples_ms"]) == 3 and all(s > 0 for s in out["samples_ms"])
    assert (out["engine"], out["batch"], out["seq_len"], out["threads"]) == (engine, 2, 16, 1)
    expected_provider = "torch-cpu" if engine == "pytorch" else "CPUExecutionProvider"
    assert out["provider"] == expected_provider
    assert out["peak_rss_mb"] > 0 and out["engine_version"]


def test_worker_explains_too_long_sequence(tiny_onnx: Path) -> None:
    args = {
        "model_path": str(tiny_onnx),
        "engine": "onnxruntime",
        "batch": 1,
        "seq_len": 4096,
        "threads": 1,
        "warmup": 0,
        "iters": 1,
    }
    proc = _worker(args)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "max_position_embeddings 128" in proc.stderr


def test_run_latency_on_two_variants(tiny_onnx: Path) -> None:
    ballast = bytearray(600 * 2**20)  # a big parent must not leak its peak into the workers
    ballast[::4096] = b"x" * len(ballast[::4096])
    variants = [
        Variant("teacher_onnx", tiny_onnx, "onnxruntime"),
        Variant("student_onnx", tiny_onnx, "onnxruntime"),
    ]
    results = run_latency(
        variants,
        batches=(1,),
        seq_lens=(16,),
        threads=1,
        warmup=1,
        iters=3,
        rounds=2,
        progress=False,
    )
    assert [r["label"] for r in results] == ["teacher_onnx", "student_onnx"]
    for r in results:
        assert set(r) == RESULT_KEYS
        assert (r["batch"], r["seq_len"], r["threads"], r["n_samples"]) == (1, 16, 1, 6)
        assert r["provider"] == "CPUExecutionProvider"
        assert 0 < r["min_ms"] <= r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] <= r["max_ms"]
        assert len(r["round_p50s_ms"]) == 2
        assert r["throughput_per_s"] == pytest.approx(1000.0 / r["p50_ms"])
        assert r["peak_rss_mb"] < 400  # ORT + a tiny graph, not the 600 MB parent
    del ballast


def _fake_worker(calls: list[str]) -> Any:
    """Stands in for the subprocess: samples encode the variant, batch and call number."""

    def fake(variant: Variant, args: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
        calls.append(f"{variant.label}@{args['batch']}")
        base = 10.0 if variant.label == "A" else 5.0
        n = len(calls)
        return {
            "batch": args["batch"],
            "seq_len": args["seq_len"],
            "threads": args["threads"],
            "provider": "CPUExecutionProvider",
            "engine_version": "x",
            "samples_ms": [base + n, base + n, base + n + 1],
            "peak_rss_mb": 100.0 + n,
        }

    return fake


def test_run_latency_interleaves_rounds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(latency, "_run_worker", _fake_worker(calls))
    variants = [Variant("A", tmp_path, "pytorch"), Variant("B", tmp_path, "pytorch")]
    results = run_latency(variants, batches=(1, 4), rounds=2, progress=False)
    assert calls == ["A@1", "B@1", "A@1", "B@1", "A@4", "B@4", "A@4", "B@4"]
    assert [(r["label"], r["batch"]) for r in results] == [("A", 1), ("B", 1), ("A", 4), ("B", 4)]
    a1 = results[0]
    assert a1["round_p50s_ms"] == [11.0, 13.0]  # calls 1 and 3
    assert a1["p50_ms"] == pytest.approx(12.5)  # median of 11, 11, 12, 13, 13, 14
    assert a1["peak_rss_mb"] == 103.0
    assert results[3]["throughput_per_s"] == pytest.approx(4 * 1000.0 / results[3]["p50_ms"])


def test_run_latency_refuses_bad_variants(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        run_latency([Variant("x", tmp_path / "missing", "pytorch")], progress=False)
    with pytest.raises(UserError, match="unknown engine"):
        run_latency([Variant("x", tmp_path, "tensorrt")], progress=False)
    with pytest.raises(ValueError, match="unique"):
        run_latency([Variant("x", tmp_path, "pytorch")] * 2, progress=False)


def test_worker_failure_carries_stderr(tiny_onnx: Path) -> None:
    with pytest.raises(RuntimeError, match="max_position_embeddings"):
        run_latency(
            [Variant("t", tiny_onnx, "onnxruntime")],
            batches=(1,),
            seq_lens=(4096,),
            warmup=0,
            iters=1,
            rounds=1,
            progress=False,
        )


def _result(label: str, batch: int, round_p50s: list[float]) -> dict[str, Any]:
    return {"label": label, "batch": batch, "seq_len": 128, "round_p50s_ms": round_p50s}


def test_speedups_from_paired_rounds() -> None:
    results = [
        _result("teacher", 1, [10.0, 12.0, 8.0]),
        _result("student", 1, [5.0, 4.0, 2.0]),
        _result("teacher", 32, [100.0, 90.0, 120.0]),
        _result("student", 32, [20.0, 30.0, 30.0]),
        _result("int8", 1, [1.0, 1.0, 1.0]),
    ]
    out = speedups(results, [("teacher", "student"), ("teacher", "int8"), ("teacher", "nope")])
    assert out == [
        {
            "baseline": "teacher",
            "candidate": "student",
            "batch": 1,
            "seq_len": 128,
            "threads": None,
            "ratio": 3.0,
            "ratio_min": 2.0,
            "ratio_max": 4.0,
        },
        {
            "baseline": "teacher",
            "candidate": "student",
            "batch": 32,
            "seq_len": 128,
            "threads": None,
            "ratio": 4.0,
            "ratio_min": 3.0,
            "ratio_max": 5.0,
        },
        {
            "baseline": "teacher",
            "candidate": "int8",
            "batch": 1,
            "seq_len": 128,
            "threads": None,
            "ratio": 10.0,
            "ratio_min": 8.0,
            "ratio_max": 12.0,
        },
    ]


def test_dev_traffic_batches_pad_consecutive_sentences_to_their_longest() -> None:
    lengths = [3, 5, 2, 7, 4]
    names = ["input_ids", "attention_mask", "token_type_ids"]
    batches = traffic_batches(400, 4, lengths, names, count=3)
    # consecutive sentences, cycling: [3 5 2 7] [4 3 5 2] [7 4 3 5]
    assert [b["input_ids"].shape for b in batches] == [(4, 7), (4, 5), (4, 7)]
    assert batches[1]["attention_mask"].sum(axis=1).tolist() == [4, 3, 5, 2]
    for b in batches:
        assert ((b["input_ids"] == 0) == (b["attention_mask"] == 0)).all()  # [PAD] = 0 only
        assert (b["input_ids"][b["attention_mask"] == 1] >= 5).all()  # no special tokens


def test_worker_replays_dev_lengths(tiny_onnx: Path) -> None:
    args = {
        "model_path": str(tiny_onnx),
        "engine": "onnxruntime",
        "batch": 2,
        "seq_len": "dev",
        "lengths": [5, 9, 17, 3],
        "threads": 1,
        "warmup": 1,
        "iters": 4,
    }
    proc = _worker(args)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["seq_len"] == "dev" and len(out["samples_ms"]) == 4
    assert out["device"] == "cpu" and out["device_name"]


@pytest.mark.parametrize(
    ("engine", "extra", "message"),
    [
        ("onnxruntime", {"device": "cuda", "ort_provider": "cuda"}, "no CUDAExecutionProvider"),
        ("onnxruntime", {"ort_provider": "tensorrt"}, "no TensorrtExecutionProvider"),
        ("pytorch", {"device": "cuda", "precision": "fp16"}, "sees no CUDA device"),
    ],
)
def test_worker_refuses_a_missing_gpu_engine_instead_of_falling_back(
    engine: str, extra: dict[str, str], message: str, tiny_teacher_dir: Path, tiny_onnx: Path
) -> None:
    import onnxruntime
    import torch

    if (
        torch.cuda.is_available()
        or "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    ):
        pytest.skip("this machine has a GPU engine: the refusal cannot be shown here")
    path = tiny_onnx if engine == "onnxruntime" else tiny_teacher_dir
    args = {
        "model_path": str(path),
        "engine": engine,
        "batch": 1,
        "seq_len": 8,
        "threads": 1,
        "warmup": 0,
        "iters": 1,
        **extra,
    }
    proc = _worker(args)
    assert proc.returncode == 2 and proc.stdout == ""
    assert message in proc.stderr


def test_run_latency_sweeps_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, int]] = []

    def fake(variant: Variant, args: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
        seen.append((variant.label, args["threads"]))
        assert env["OMP_NUM_THREADS"] == str(args["threads"])
        ms = (20.0 if variant.label == "A" else 5.0) / args["threads"]
        return {
            "batch": args["batch"],
            "seq_len": args["seq_len"],
            "threads": args["threads"],
            "provider": "p",
            "engine_version": "x",
            "samples_ms": [ms],
            "peak_rss_mb": 1.0,
        }

    monkeypatch.setattr(latency, "_run_worker", fake)
    variants = [Variant("A", tmp_path, "pytorch"), Variant("B", tmp_path, "pytorch")]
    results = run_latency(variants, batches=(1,), threads=[1, 2], rounds=1, progress=False)
    assert seen == [("A", 1), ("B", 1), ("A", 2), ("B", 2)]
    assert [(r["label"], r["threads"], r["p50_ms"]) for r in results] == [
        ("A", 1, 20.0),
        ("B", 1, 5.0),
        ("A", 2, 10.0),
        ("B", 2, 2.5),
    ]
    ratios = speedups(results, [("A", "B")])
    assert [(r["threads"], r["ratio"]) for r in ratios] == [(1, 4.0), (2, 4.0)]
    with pytest.raises(ValueError, match="lengths"):
        run_latency(variants, seq_lens=("dev",), progress=False)


def test_run_latency_logs_its_progress_without_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("COMPRESSOR_LOG_EVERY_S", "0")
    monkeypatch.setattr(latency, "_run_worker", _fake_worker([]))
    variants = [Variant("A", tmp_path, "pytorch"), Variant("B", tmp_path, "pytorch")]
    run_latency(variants, batches=(1,), seq_lens=(16,), threads=2, rounds=2)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("latency A t2 b1 s16 round 1/2: 0/4, ETA ?")
    assert re.fullmatch(
        r"latency B t2 b1 s16 round 2/2: 4/4, [\d.]+ runs/s, ETA 0:00:00", lines[-1]
    )
    assert sorted({int(line.split(": ")[1].split("/")[0]) for line in lines}) == [0, 1, 2, 3, 4]
