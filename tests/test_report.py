"""Report rendering: the three files, their numbers, and tolerance of half-finished runs."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

from benchmarks.report import Report, pareto_front, write_report
from benchmarks.report import render_markdown as render_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SPEEDUP_CELL = "4.80\u00d7  (4.50\u20135.10)"  # escapes: ruff flags the look-alike characters


def _parity(passed: bool) -> dict[str, Any]:
    return {
        "max_abs_diff": 3.2e-6 if passed else 0.5,
        "argmax_agreement": 1.0 if passed else 0.875,
        "n": 200,
        "tolerance": 1e-4,
        "passed": passed,
    }


def _latency_result(label: str, engine: str, batch: int, p50: float) -> dict[str, Any]:
    return {
        "label": label,
        "engine": engine,
        "model_path": f"/runs/{label}",
        "batch": batch,
        "seq_len": 128,
        "threads": 2,
        "provider": "torch-cpu" if engine == "pytorch" else "CPUExecutionProvider",
        "p50_ms": p50,
        "p90_ms": p50 * 1.1,
        "p99_ms": p50 * 1.3,
        "mean_ms": p50 * 1.05,
        "std_ms": p50 * 0.05,
        "round_p50s_ms": [p50, p50, p50],
        "throughput_per_s": batch * 1000.0 / p50,
        "peak_rss_mb": 512.0,
        "samples_ms": [p50 * f for f in (0.9, 1.0, 1.0, 1.1, 1.5)],
    }


def render_markdown(report: dict[str, Any]) -> str:
    return render_report(Report.model_validate(report))


def full_report() -> dict[str, Any]:
    return {
        "run": {
            "name": "demo",
            "created": "2025-01-01T12:00:00+00:00",
            "recipe_hash": "abc123",
            "device": "cpu (2 threads)",
            "notes": ["student initialised from teacher layers 3 and 6"],
        },
        "models": {
            "teacher": {
                "label": "teacher",
                "format": "pytorch",
                "path": "/runs/teacher/model",
                "parameters": 22_713_216,
                "size_mb": 86.7,
                "dev_accuracy": 0.912345,
                "parity": None,
            },
            "student": {
                "label": "student",
                "format": "pytorch",
                "path": "/runs/student/model",
                "parameters": 11_200_000,
                "size_mb": 42.8,
                "dev_accuracy": 0.8876,
                "parity": None,
            },
            "student_onnx": {
                "label": "student_onnx",
                "format": "onnx",
                "path": "/runs/student/onnx/model.onnx",
                "parameters": 11_200_000,
                "size_mb": 42.9,
                "dev_accuracy": 0.8876,
                "parity": _parity(True),
            },
            "student_int8": {
                "label": "student_int8",
                "format": "onnx-int8",
                "path": "/runs/student/onnx/model_int8.onnx",
                "parameters": None,
                "size_mb": 11.1,
                "dev_accuracy": 0.8761,
                "parity": _parity(False),
            },
        },
        "training": {
            "steps": 300,
            "best_step": 200,
            "best_dev_accuracy": 0.8876,
            "train_examples": 67349,
            "history": [
                {"step": 100, "loss": 0.71, "dev_accuracy": 0.81},
                {"step": 150, "loss": 0.52, "dev_accuracy": None},
                {"step": 200, "loss": 0.43, "dev_accuracy": 0.8876},
                {"step": 300, "loss": 0.40, "dev_accuracy": 0.885},
            ],
        },
        "benchmarks": {
            "benchmark": {
                "target": "cpu",
                "mode": "measured",
                "threads": 2,
                "results": [
                    _latency_result("teacher", "pytorch", 1, 12.0),
                    _latency_result("student_onnx", "onnxruntime", 1, 4.0),
                    _latency_result("student_int8", "onnxruntime", 1, 2.5),
                ],
                "speedups": [
                    {
                        "baseline": "teacher",
                        "candidate": "student_int8",
                        "threads": 2,
                        "batch": 1,
                        "seq_len": 128,
                        "ratio": 4.8,
                        "ratio_min": 4.5,
                        "ratio_max": 5.1,
                    }
                ],
            }
        },
    }


def test_write_report_files(tmp_path: Path) -> None:
    report = full_report()
    paths = write_report(tmp_path, Report.model_validate(report))
    assert paths == {
        "json": tmp_path / "report.json",
        "md": tmp_path / "report.md",
        "html": tmp_path / "report.html",
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.json", "report.md"]
    assert json.loads(paths["json"].read_text(encoding="utf-8")) == report
    assert paths["md"].read_text(encoding="utf-8") == render_markdown(report)


def test_markdown_numbers() -> None:
    md = render_markdown(full_report())
    assert md.startswith("# Compression report: demo\n")
    for accuracy in ("91.23%", "88.76%", "87.61%"):
        assert accuracy in md
    assert f"| teacher | student_int8 | 2 | 1 | 128 | {SPEEDUP_CELL} |" in md
    assert (
        "| student_onnx | onnx | 11.20 | — | 42.90 | 88.76% | 3.2e-06 (tol 1e-04) | 100.00% |" in md
    )
    assert "| 87.50% | ✗ (n=200) |" in md
    assert "| teacher | pytorch | 2 | 1 | 128 | 12.00 | 13.20 | 15.60 | 83.3 | 512 |" in md
    assert "Parity max \\|Δ\\|" in md  # a literal pipe would split the column
    assert "| 200 (best) | 0.4300 | 88.76% |" in md
    assert "Loss: 0.7100 → 0.4000 over 4 logged steps" in md
    assert "student initialised from teacher layers 3 and 6" in md


def test_html_is_self_contained(tmp_path: Path) -> None:
    page = write_report(tmp_path, Report.model_validate(full_report()))["html"].read_text(
        encoding="utf-8"
    )
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    # size bars, accuracy-vs-latency with its Pareto front, latency distribution
    assert [alt for alt, _ in images] == [
        "size on disk",
        "dev accuracy vs p50 latency (batch 1)",
        "latency distribution (batch 1)",
    ]
    assert all(base64.b64decode(data).startswith(PNG_SIGNATURE) for _, data in images)
    assert "<style>" in page and "<link" not in page and "<script" not in page
    assert not re.search(r'(src|href)="(?!data:)', page)
    assert "91.23%" in page and SPEEDUP_CELL in page
    assert "<th>Parity max |Δ|</th>" in page


def test_missing_sections_still_render(tmp_path: Path) -> None:
    report: dict[str, Any] = {
        "run": None,
        "models": {"student": {"label": "student", "dev_accuracy": None, "parity": None}},
        "training": None,
        "benchmarks": {
            "benchmark": {"target": "cpu", "threads": None, "results": None, "speedups": None}
        },
    }
    md = render_markdown(report)
    assert md.startswith("# Compression report\n")
    assert "| student | — | — | — | — | — | — | — |" in md
    for title in ("Run", "Notes", "Latency (CPU, measured)", "Speed-ups", "Training"):
        assert f"## {title}\n\n—\n" in md
    page = write_report(tmp_path, Report.model_validate(report))["html"].read_text(encoding="utf-8")
    assert "data:image/png" not in page
    # a report shows the targets the run recorded; here one with nothing in it yet
    empty_cpu = {"models": {}, "benchmarks": {"benchmark": {"target": "cpu"}}}
    assert render_markdown(empty_cpu).count("—") == 7


def test_long_history_is_thinned_but_keeps_best() -> None:
    history = [{"step": s, "loss": 1.0 / s, "dev_accuracy": 0.5} for s in range(1, 101)]
    report = {"models": {}, "training": {"best_step": 42, "history": history}}
    md = render_markdown(report)
    rows = re.findall(r"^\| \d+( \(best\))? \|", md, flags=re.MULTILINE)
    assert 20 <= len(rows) <= 21
    assert "| 42 (best) |" in md and "| 1 |" in md and "| 100 |" in md


def test_pareto_front_keeps_only_unbeaten_models() -> None:
    # (latency ms, accuracy %): the 9 ms / 85 % model is beaten by the 5 ms / 86 % one
    points = [(12.0, 91.0), (5.0, 86.0), (9.0, 85.0), (2.5, 84.0), (4.0, 84.0)]
    assert pareto_front(points) == [(2.5, 84.0), (5.0, 86.0), (12.0, 91.0)]


def test_cuda_skip_and_arm_estimates_are_labelled() -> None:
    report = full_report()
    benchmarks = report["benchmarks"]
    benchmarks["benchmark_cuda"] = {"target": "cuda", "mode": "skipped", "reason": "no GPU here"}
    estimate = {"compute_bound_ms": 8.0, "memory_bound_ms": 1.0}
    benchmarks["benchmark_arm_estimated"] = {
        "target": "arm",
        "mode": "estimated",
        "method": "roofline",
        "profiles": {"raspberry-pi-4": {"name": "Pi 4", "sources": ["brief"], "assumed": ["eff"]}},
        "estimates": [
            {
                "label": "teacher ONNX",
                "profile": "raspberry-pi-4",
                "batch": 1,
                "seq_len": 128,
                "threads": 4,
                "estimate_ms": 40.0,
                **estimate,
            },
            {
                "label": "student ONNX",
                "profile": "raspberry-pi-4",
                "batch": 1,
                "seq_len": 128,
                "threads": 4,
                "estimate_ms": 16.0,
                **estimate,
            },
        ],
        "calibration": [
            {
                "label": "student ONNX",
                "batch": 1,
                "seq_len": 128,
                "estimate_ms": 4.0,
                "measured_p50_ms": 5.0,
                "measured_over_estimate": 1.25,
                "host_sgemm_gflops": 90.0,
                "host_copy_gbs": 20.0,
            }
        ],
    }
    md = render_markdown(report)
    assert "## Latency (CUDA, measured)\n\n- Skipped: no GPU here" in md
    assert "## ARM (estimated)" in md and "ESTIMATE, not a measurement" in md
    assert "| raspberry-pi-4 | student ONNX | 4 | 1 | 128 | 16.00 | compute | 2.50\u00d7 |" in md
    assert "estimate 4.00 ms, measured p50 5.00 ms (1.25\u00d7 the estimate)" in md
    assert "raspberry-pi-4: Pi 4; sources: brief; assumed: eff" in md


def test_emulated_arm_is_a_functional_check_with_labelled_times() -> None:
    report = full_report()
    row = {
        "label": "student ONNX int8",
        "format": "onnx",
        "cpu": "cortex-a76",
        "max_abs_diff": 5.6e-3,
        "argmax_agree": 1.0,
        "passed": True,
        "p50_ms_emulated": 412.0,
        "emulation_slowdown": 190.4,
    }
    failed = {
        "label": "teacher ONNX",
        "format": "ort",
        "cpu": "max",
        "passed": False,
        "error": "exit 139",
    }
    report["benchmarks"]["benchmark_arm_emulated"] = {
        "target": "arm",
        "mode": "emulated",
        "passed": False,
        "note": "not a device",
        "root": {"qemu": "10.0.13", "onnxruntime": "1.32.0"},
        "results": [row, failed],
    }
    md = render_markdown(report)
    assert "## ARM (emulated, functional check)" in md
    assert "Functional check under qemu-user: FAILED. not a device" in md
    assert (
        "| student ONNX int8 | onnx | cortex-a76 | 5.6e-03 | 100.00% | ✓ | 412.0 | 190\u00d7 |"
        in md
    )
    assert "| teacher ONNX | ort | max | — | — | ✗ exit 139 | — | — |" in md
    assert "p50 ms (EMULATED)" in md


def test_tradeoff_puts_the_accuracy_drop_next_to_the_speed_up() -> None:
    report = full_report()
    report["benchmarks"]["benchmark"]["speedups"].append(
        {
            "baseline": "student_onnx",
            "candidate": "student_int8",
            "threads": 2,
            "batch": 1,
            "seq_len": 128,
            "ratio": 1.6,
            "ratio_min": 1.5,
            "ratio_max": 1.7,
        }
    )
    md = render_markdown(report)
    # int8 88.76 % -> 87.61 %: -1.15 points for 1.6x, at a quarter of the size
    assert "| student_int8 | 87.61% | -1.15 | 11.10 | b1 s128: 1.60\u00d7  (1.50\u20131.70) |" in md
