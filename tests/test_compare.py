"""`compressor compare`: rows from each run's report.json, speed-ups within each run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.compare import compare, render_markdown
from tests.test_cli import cli


def _result(label: str, threads: int, p50: float, batch: int = 1) -> dict[str, Any]:
    return {"label": label, "batch": batch, "seq_len": 128, "threads": threads, "p50_ms": p50}


def _run(folder: Path, student_acc: float, student_p50: float) -> Path:
    folder.mkdir(parents=True)
    report = {
        "models": {
            "teacher": {
                "label": "teacher PyTorch",
                "format": "pytorch",
                "size_mb": 86.7,
                "dev_accuracy": 0.86,
            },
            "student_onnx": {
                "label": "student ONNX",
                "format": "onnx",
                "size_mb": 66.4,
                "dev_accuracy": student_acc,
            },
        },
        "benchmarks": {
            "benchmark": {
                "target": "cpu",
                "mode": "measured",
                "results": [
                    _result("teacher PyTorch", 2, 30.0),
                    _result("teacher ONNX", 2, 24.0),
                    _result("student ONNX", 2, student_p50),
                    _result("student ONNX", 1, 99.0),
                    _result("teacher ONNX", 2, 500.0, batch=32),
                ],
            }
        },
    }
    (folder / "report.json").write_text(json.dumps(report))
    return folder


def test_rows_compare_each_student_with_its_own_runs_teacher(tmp_path: Path) -> None:
    a = _run(tmp_path / "a", 0.8475, 12.0)
    b = _run(tmp_path / "b", 0.8200, 6.0)
    rows = {(r["run"], r["model"]): r for r in compare([a, b])}
    assert rows["a", "student ONNX"]["speedup"] == 2.0  # teacher ONNX 24 / 12, at 2 threads
    assert rows["b", "student ONNX"]["speedup"] == 4.0
    assert round(rows["a", "student ONNX"]["delta_points"], 2) == -1.25
    assert rows["a", "teacher PyTorch"]["speedup"] == 1.0
    md = render_markdown(list(rows.values()))
    assert "| b | student ONNX | onnx | 82.00% | -4.00 | 66.4 | 6.00 | 4.00\u00d7 |" in md
    assert "batch 1, seq 128, 2 threads" in md


def test_runs_of_other_metrics_say_theirs(tmp_path: Path) -> None:
    a = _run(tmp_path / "a", 0.8475, 12.0)
    b = _run(tmp_path / "b", 0.9012, 6.0)
    report = json.loads((b / "report.json").read_text())
    (b / "report.json").write_text(json.dumps({**report, "run": {"metric": "entity F1"}}))
    rows = compare([a, b])
    assert {r["metric"] for r in rows} == {"accuracy", "entity F1"}
    md = render_markdown(rows)
    assert "| Dev score |" in md and "| 90.12% (entity F1) |" in md
    assert "| 84.75% (accuracy) |" in md
    assert "| Dev entity F1 |" in render_markdown([r for r in rows if r["run"] == "b"])


def test_cli_writes_the_table_and_refuses_a_folder_without_report(tmp_path: Path) -> None:
    a = _run(tmp_path / "a", 0.85, 12.0)
    out = tmp_path / "cmp.md"
    done = cli("compare", str(a), str(_run(tmp_path / "b", 0.8, 8.0)), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_text() in done.stdout
    assert len(json.loads(out.with_suffix(".json").read_text())) == 4
    refused = cli("compare", str(a), str(tmp_path))
    assert refused.returncode == 2 and "has no report.json" in refused.stderr
