"""bench-students' bookkeeping without training: the recipes it runs, which files it times,
the mean and spread over seeds, and the verdict on the issue's bar."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

from benchmarks.experiments import students_compare as sc
from benchmarks.report import EN_DASH, TIMES
from compressor.recipe import load_recipe
from compressor.runfolder import RunFolder

ARGS = argparse.Namespace(seeds=[1, 2], kinds=["transformer", "bilstm", "cnn"],
                          train_examples=640, per_example=5, epochs=2.0, beta=0.5, threads=2,
                          iters=5)  # fmt: skip
CELL_A = [["conv3", 0, 2]]
CELL_B = [["max_pool3", 1, 2]]
ACCURACY = {  # (kind, seed) -> (fp32 file, int8 file)
    ("transformer", 1): (0.85, 0.84), ("transformer", 2): (0.87, 0.86),
    ("bilstm", 1): (0.86, 0.86), ("bilstm", 2): (0.86, 0.85),
    ("cnn", 1): (0.80, 0.79), ("cnn", 2): (0.82, 0.81),
}  # fmt: skip


def fake_run(out: Path, kind: str, seed: int) -> None:
    path = sc.folder(out, kind, seed)
    run = RunFolder.create(path, "compress", load_recipe(), overwrite=False, resume=False)
    run.complete("distill", train_seconds=60.0 * seed, train_samples_per_s=100.0 * seed,
                 train_examples=640, student_non_embedding_parameters=1000,
                 student_parameters=5000, teacher_non_embedding_parameters=20000)  # fmt: skip
    fp32, int8 = ACCURACY[kind, seed]
    run.complete("evaluate", dev_accuracy={"teacher": 0.87, "teacher_int8": 0.872,
                                           "student_onnx": fp32, "student_int8": int8})  # fmt: skip
    cells = [CELL_A if seed == 1 else CELL_B] if kind == "cnn" else None
    if kind == "cnn":
        run.complete("adabert", cells=cells, depth=1, cost=0.4, seconds=90.0,
                     probe_accuracies=[0.5, 0.9])  # fmt: skip
    (path / "model").mkdir()
    (path / "model" / "config.json").write_text(json.dumps({"cells": cells}))
    for sub, size in (("onnx", 2**20), ("teacher_onnx", 2**22)):
        (path / sub / "onnx").mkdir(parents=True)  # the hub's layout: graphs under onnx/
        for name in ("model.onnx", "model_int8.onnx"):
            graph = path / sub / "onnx" / name
            graph.write_bytes(b"0" * (size if name == "model.onnx" else size // 4))


@pytest.fixture
def out(tmp_path: Path) -> Path:
    for kind, seed in ACCURACY:
        fake_run(tmp_path, kind, seed)
    return tmp_path


def test_each_kind_runs_its_recipe_with_the_shared_budget() -> None:
    transformer = sc.recipe_for("transformer", 2, ARGS)
    bilstm, cnn = sc.recipe_for("bilstm", 2, ARGS), sc.recipe_for("cnn", 3, ARGS)
    shared = {"data.max_train_examples": 640, "quantize.mode": "dynamic-int8", "train.seed": 2}
    assert transformer == load_recipe(sc.RECIPES / "demo.yaml", shared)
    assert not transformer.augment.enabled and transformer.student.kind == "transformer"
    assert bilstm.student.kind == "bilstm" and bilstm.augment.per_example == 5
    assert bilstm.train.epochs == 2.0 and bilstm.train.seed == 2
    assert cnn.adabert.enabled and cnn.adabert.seed == 3 and cnn.adabert.beta == 0.5
    assert {r.data.max_train_examples for r in (transformer, bilstm, cnn)} == {640}


def test_one_architecture_per_kind_is_timed_and_every_searched_one(
    out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import benchmarks.latency
    import compressor.data

    bench_stage = sys.modules["compressor.pipeline.benchmark"]  # the package exports a function

    assert list(sc.timed_runs(out, ARGS)) == ["transformer", "bilstm", "cnn", "cnn-s2"]
    timed: list[tuple[str, str]] = []

    def run_latency(variants, **settings):
        timed.extend((v.label, Path(v.model_path).relative_to(out).as_posix()) for v in variants)
        assert settings["batches"] == (1, 32) and settings["seq_lens"] == (128, "dev")
        return []

    monkeypatch.setattr(benchmarks.latency, "run_latency", run_latency)
    monkeypatch.setattr(compressor.data, "load_task_data", lambda _cfg: None)
    monkeypatch.setattr(bench_stage, "dev_lengths", lambda *_a: [5, 9])
    timing = sc.latency(out, ARGS)
    teacher_files = "transformer-s1/teacher_onnx/onnx/"
    assert timed[:2] == [("teacher", f"{teacher_files}model.onnx"),
                         ("teacher int8", f"{teacher_files}model_int8.onnx")]  # fmt: skip
    assert [label for label, _ in timed[2:]] == [
        "transformer fp32", "transformer int8", "bilstm fp32", "bilstm int8",
        "cnn fp32", "cnn int8", "cnn-s2 fp32", "cnn-s2 int8"]  # fmt: skip
    assert ("cnn-s2 int8", "cnn-s2/onnx/onnx/model_int8.onnx") in timed
    assert (out / "latency.json").is_file() and timing["speedups"] == []
    timed.clear()
    assert sc.latency(out, ARGS) == timing and timed == []  # the same files: not timed again


def _timing(ratios: dict[str, float]) -> dict:
    speedups = [
        {"baseline": base, "candidate": cand, "batch": b, "seq_len": s, "ratio": r,
         "ratio_min": r * 0.9, "ratio_max": r * 1.1}
        for cand, r in ratios.items() for base in ("teacher", "teacher int8")
        for b, s in sc.SHAPES
    ]  # fmt: skip
    return {"threads": 2, "speedups": speedups}


def test_rows_average_the_seeds_and_the_bar_is_judged_on_them(out: Path) -> None:
    timing = _timing({"transformer fp32": 3.0, "bilstm fp32": 12.0, "bilstm int8": 9.0,
                      "cnn fp32": 30.0})  # fmt: skip
    data = sc.rows(out, ARGS, timing)
    by = {(r["label"], r["file"]): r for r in data["rows"]}
    bilstm = by["bilstm", "fp32"]
    assert bilstm["seeds"] == [1, 2] and bilstm["accuracies"] == [0.86, 0.86]
    assert bilstm["dev_accuracy"]["mean"] == pytest.approx(0.86)
    assert by["transformer", "fp32"]["dev_accuracy"]["std"] == pytest.approx(0.0141421, rel=1e-4)
    assert bilstm["drop_points"] == pytest.approx(1.0)
    assert by["bilstm", "int8"]["drop_points"] == pytest.approx(1.5)
    assert by["cnn", "fp32"]["seeds"] == [1] and by["cnn-s2", "fp32"]["seeds"] == [2]
    assert by["transformer", "fp32"]["file_mb"] == 1.0 and by["bilstm", "int8"]["file_mb"] == 0.25
    assert bilstm["speedups"]["teacher b1 sdev"]["ratio"] == 12.0
    assert by["cnn-s2", "int8"]["speedups"]["teacher b1 sdev"] is None
    assert bilstm["train_seconds"]["mean"] == 90.0
    assert [s["seed"] for s in data["searches"]] == [1, 2]
    # BiLSTM fp32: 12x at 1.0 point: reached; the CNN is 30x but 7 points down; int8 only 9x
    verdict = sc.bar_verdict(data)
    assert verdict.startswith("**Bar reached**") and verdict.endswith(": bilstm fp32.")
    text = sc.render(data, timing, ARGS)
    assert "86.00 ± 0.00 (n=2)" in text and f"12.00{TIMES} (10.80{EN_DASH}13.20)" in text
    assert "conv3 0->2" in text and "max_pool3 1->2" in text


def test_the_bar_is_not_reached_by_a_fast_student_too_far_down(out: Path) -> None:
    data = sc.rows(out, ARGS, _timing({"bilstm fp32": 9.9, "cnn fp32": 40.0}))
    assert sc.bar_verdict(data).startswith("**Bar not reached**")
