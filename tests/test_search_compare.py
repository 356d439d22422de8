"""bench-search's table without a search: the goal verdict with its numbers, the rows of
every file, the trial table rebuilt from search.json, and the ARM search's choice."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.experiments import search_compare as sc
from benchmarks.report import TIMES

ARGS = argparse.Namespace(budget="60m", max_drop=1.0, train_examples=12800, threads=2)


def ratio(value: float) -> dict[str, float]:
    return {"ratio": value, "ratio_min": value * 0.9, "ratio_max": value * 1.1}


def summary(kind: str, settings: dict, drop: float, speedup: float) -> dict:
    outcome = {"trial": 0, "folder": "f", "file": "f.onnx", "label": "student ONNX int8",
               "dev_accuracy": 0.87 - drop / 100, "drop": drop, "size_mb": 3.0,
               "speed": {"mode": "measured", "vs_teacher": 2 * speedup,
                         "vs_teacher_int8": speedup, "candidate_ms": 1.0},
               "train_seconds": 60.0}  # fmt: skip
    rows = [
        {"number": 0, "state": "COMPLETE", "kind": kind, "settings": settings,
         "outcome": outcome, "stopped": None, "seconds": 120.0, "on_front": True,
         "repeat_of": None, "searched": list(settings)},
        {"number": 1, "state": "PRUNED", "kind": "cnn", "settings": {},
         "outcome": None, "stopped": "dev accuracy 0.5 at step 40 is below its rung",
         "seconds": 30.0, "on_front": False, "repeat_of": None},
        {"number": 2, "state": "PRUNED", "kind": kind, "settings": settings, "outcome": None,
         "stopped": "repeats trial 0", "seconds": 0.1, "on_front": False, "repeat_of": 0},
    ]  # fmt: skip
    return {"target": "this CPU, 2 threads, batch 1, seq dev", "max_drop": 1.0,
            "teacher_accuracy": 0.87, "rows": rows,
            "choice": {"number": 0, "met": drop <= 1.0, "reason": "the fastest of 1"},
            "shipped": {"folder": "best", "dev_accuracy": 0.87 - drop / 100}}  # fmt: skip


def data(drop: float, speedup: float) -> dict:
    rows = [
        {"label": label, "dev_accuracy": acc, "drop_points": round(100 * (0.87 - acc), 3),
         "file_mb": mb, "vs_teacher": None if label == "teacher" else ratio(r),
         "vs_teacher_int8": None if label == "teacher" else ratio(r / 2)}
        for label, acc, mb, r in [("teacher", 0.87, 90.0, 1.0), ("teacher int8", 0.871, 23.0, 2.0),
                                  ("default recipe int8", 0.85, 12.0, 4.0),
                                  ("search's choice", 0.87 - drop / 100, 3.0, 2 * speedup)]
    ]  # fmt: skip
    return {"rows": rows, "search": summary("bilstm", {"student.hidden": 150}, drop, speedup)}


def test_goal_is_judged_on_the_chosen_files_drop_and_speed_over_teacher_int8() -> None:
    assert "**Goal reached**" in sc.goal_verdict(data(0.8, 6.0))
    slow = sc.goal_verdict(data(0.8, 3.0))
    assert "**Goal not reached**" in slow and f"3.00{TIMES}" in slow and "0.80 points" in slow
    assert "**Goal not reached**" in sc.goal_verdict(data(1.4, 9.0))


def test_render_lists_every_file_the_trials_and_the_arm_choice(tmp_path: Path) -> None:
    arm = summary("transformer", {"student.layers": 2}, 0.5, 3.0)
    arm["target"] = "cortex-a55 (roofline estimate), 4 threads, batch 1, seq 128"
    text = sc.render(data(0.8, 6.0), arm, ARGS)
    for label in ("teacher int8", "default recipe int8", "search's choice"):
        assert f"| {label} |" in text
    assert "1 finished, 1 stopped early, 0 failed, 1 repeats reused" in text
    assert "trial 0 (bilstm: student.hidden=150)" in text
    assert "cortex-a55" in text and "trial 0 (transformer: student.layers=2)" in text
    assert "below its rung" in text and "repeats trial 0" not in text  # repeats not listed
    assert f"| search's choice | 86.20 | 0.80 | 3.0 | 12.00{TIMES}" in text
