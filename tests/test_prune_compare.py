"""bench-prune's bookkeeping without training: which runs it makes, which files it times,
and how it files a student whose export failed parity."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.experiments import prune_compare
from compressor.errors import UserError
from compressor.recipe import load_recipe
from compressor.runfolder import RunFolder
from exporters.parity import ParityResult
from tests.conftest import write_sst2_subset
from tests.test_results import assert_published

PASSED = {"max_abs_diff": 1e-6, "argmax_agreement": 1.0, "passed": True}
FAILED = {"max_abs_diff": 0.3, "argmax_agreement": 0.8, "passed": False}


def test_default_sizes_and_the_baselines_at_each() -> None:
    assert prune_compare.DEFAULT_SIZES == ("half", "quarter")
    quarter = prune_compare.recipes("quarter", seed=1)
    assert list(quarter) == ["homodistil", "one_shot_ft", "one_shot", "layer_drop_1",
                             "layer_drop_2"]  # fmt: skip
    assert [c.folder for c in quarter.values()] == [
        "quarter/homodistil", "quarter/one_shot_ft", "quarter/one_shot", "layers-1", "layers-2",
    ]  # fmt: skip
    fine_tune, _ = quarter["one_shot_ft"].recipe.prune_plan()
    distil, _ = quarter["one_shot"].recipe.prune_plan()
    assert fine_tune.alpha == 0 and fine_tune.intermediate == []  # hard labels only
    assert distil.alpha == 0.5 and [t.name for t in distil.intermediate] == ["hidden_mse"]
    for method in ("one_shot_ft", "one_shot"):  # both cut at once, at the same step
        prune = quarter[method].recipe.prune
        assert (prune.begin, prune.end) == (0.05, 0.0525)
        assert (prune.hidden, prune.heads, prune.ffn) == (256, 6, 512)
    assert quarter["layer_drop_1"].recipe.student.layers == 1
    assert prune_compare.recipes("half", seed=1)["layer_drop_3"].folder == "layers-3"


def _fake_run(folder: Path, export: dict | None, evaluated: bool = True) -> None:
    run = RunFolder.create(folder, "compress", load_recipe(), overwrite=False, resume=False)
    run.complete("prune", student_non_embedding_parameters=30,
                 teacher_non_embedding_parameters=100, student_parameters=80,
                 architecture={"hidden_size": 16, "intermediate_size": 32,
                               "heads_per_layer": [2, 2]},
                 trace=[{"step": 0, "probe_kl": 0.0}, {"step": 5, "probe_kl": 0.1}])  # fmt: skip
    if export is not None:
        run.complete("export", parity=export)
    if evaluated:
        run.complete("evaluate", dev_accuracy={"student": 0.8, "teacher": 0.9})


def test_students_that_failed_parity_are_listed_as_failed_and_not_timed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import benchmarks.latency

    _fake_run(tmp_path / "quarter/homodistil", PASSED)
    _fake_run(tmp_path / "quarter/one_shot_ft", FAILED)
    _fake_run(tmp_path / "quarter/one_shot", None, evaluated=False)  # export raised
    _fake_run(tmp_path / "layers-1", PASSED)
    _fake_run(tmp_path / "layers-2", PASSED)
    timed: list[str] = []

    def run_latency(variants, **_settings):
        timed.extend(v.label for v in variants)
        return []

    monkeypatch.setattr(prune_compare, "teacher_onnx", lambda *_args: tmp_path / "t.onnx")
    monkeypatch.setattr(benchmarks.latency, "run_latency", run_latency)
    timing = prune_compare.latency("teacher", tmp_path, 2, ["quarter"], seed=1)
    assert timed == ["teacher", "quarter/homodistil", "layers-1", "layers-2"]
    table = prune_compare.rows(tmp_path, 1, ["quarter"], timing)
    failed = {r["method"]: r["failed"] for r in table}
    assert failed["homodistil"] is None and failed["layer_drop_2"] is None
    assert failed["one_shot_ft"].startswith("ONNX failed parity (max |logit diff| 3.00e-01")
    assert failed["one_shot"].startswith("no ONNX file")
    prune_compare.write_table(tmp_path, table, timing, results=tmp_path / "results")
    published = assert_published(tmp_path / "results" / "bench-prune.md", tmp_path / "table.md")
    assert "Students: 400 steps of batch 32 at lr 0.0002, seed 1, on at most 12,800" in published
    assert "ONNX Runtime CPU, 2 threads" in published
    lines = (tmp_path / "table.md").read_text().splitlines()
    row = next(line for line in lines if "one-shot pruning + fine-tuning (hard labels)" in line)
    assert "failed: not timed" in row
    row = next(line for line in lines if "one-shot pruning + distillation |" in line)
    assert "| — |" in row and "failed: not timed" in row  # never evaluated
    notes = [line for line in lines if line.startswith("- ")]
    assert [note.split(":")[0] for note in notes] == [
        "- one-shot pruning + distillation", "- one-shot pruning + fine-tuning (hard labels)",
    ]  # fmt: skip


def test_an_export_refused_for_parity_does_not_stop_the_other_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    called: list[str] = []

    def compress(_teacher, _recipe, folder: Path, **_flags) -> None:
        called.append(str(folder.relative_to(tmp_path)))
        _fake_run(folder, None, evaluated=False)
        if folder.name == "one_shot_ft":
            raise UserError("the ONNX export does not match PyTorch")
        RunFolder.open(folder).complete("evaluate", dev_accuracy={})

    monkeypatch.setattr(prune_compare, "compress", compress)
    prune_compare.run_all("teacher", tmp_path, 1, ["half"])
    assert called == ["half/homodistil", "half/one_shot_ft", "half/one_shot", "layers-3"]

    def broken(_teacher, _recipe, folder: Path, **_flags) -> None:
        raise UserError("the data has no label column")  # before any training: stop

    monkeypatch.setattr(prune_compare, "compress", broken)
    with pytest.raises(UserError, match="no label column"):
        prune_compare.run_all("teacher", tmp_path / "other", 1, ["half"])


def test_the_teacher_onnx_file_is_parity_checked_before_it_is_timed(
    tiny_teacher_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import exporters.parity

    data = write_sst2_subset(tmp_path, 16, 16)
    recipe = load_recipe(None, {"data.source": str(data), "data.max_length": 32})
    path = prune_compare.teacher_onnx(str(tiny_teacher_dir), tmp_path / "out", recipe)
    assert path == tmp_path / "out" / "teacher_onnx" / "onnx" / "model.onnx" and path.is_file()

    def wrong(*_args, **_kwargs) -> ParityResult:
        return ParityResult(max_abs_diff=0.5, argmax_agreement=0.75, n=16, tolerance=1e-3,
                            passed=False)  # fmt: skip

    monkeypatch.setattr(exporters.parity, "check_parity", wrong)
    with pytest.raises(UserError, match=r"teacher's ONNX file .* does not match .* 5.00e-01"):
        prune_compare.teacher_onnx(str(tiny_teacher_dir), tmp_path / "out", recipe)
