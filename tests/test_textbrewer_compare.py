"""The TextBrewer throughput comparison is only fair if both tools optimise one objective on
the same batches; these tests hold `check_same_objective` to that on a tiny teacher. They
skip where TextBrewer is not installed (it is no dependency; `make bench-textbrewer` adds it),
except the check of the report's publication, which stubs both tools out."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from benchmarks.experiments import textbrewer_compare, textbrewer_peer
from benchmarks.experiments.textbrewer_compare import check_same_objective, shared_recipe
from tests.conftest import save_variant, write_sst2_subset
from tests.test_results import assert_published

needs_textbrewer = pytest.mark.skipif(
    importlib.util.find_spec("textbrewer") is None, reason="textbrewer is not installed"
)


@pytest.fixture
def spread_teacher(tiny_teacher_dir: Path, tmp_path: Path) -> str:
    """Default-init logits are near zero, where the temperature hardly matters; spread them."""
    return str(save_variant(tiny_teacher_dir, tmp_path / "teacher", seed=1, initializer_range=0.3))


@pytest.fixture
def recipe(tmp_path: Path):
    data = write_sst2_subset(tmp_path, n_train=12, n_dev=4)
    return shared_recipe(steps=3, batch_size=4, data_source=str(data))


@needs_textbrewer
def test_textbrewer_config_gives_our_loss_and_gradients(spread_teacher: str, recipe) -> None:
    check = check_same_objective(spread_teacher, recipe)
    assert check["batches_identical"] == 3
    assert check["teacher_entropy_term"] > 0
    assert check["loss_gap"] <= check["tolerance"]
    assert check["max_grad_gap"] <= check["tolerance"]


@needs_textbrewer
def test_check_rejects_a_kd_weight_without_t_squared(
    spread_teacher: str, recipe, monkeypatch: pytest.MonkeyPatch
) -> None:
    configs = textbrewer_peer.textbrewer_configs

    def without_t_squared(textbrewer, recipe, out_dir):
        train_config, distill_config = configs(textbrewer, recipe, out_dir)
        distill_config.kd_loss_weight = recipe.distill.alpha
        return train_config, distill_config

    monkeypatch.setattr(textbrewer_peer, "textbrewer_configs", without_t_squared)
    with pytest.raises(RuntimeError, match="different losses"):
        check_same_objective(spread_teacher, recipe)


def test_the_report_is_published_with_its_setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    check = {"batch_size": 4, "batches_identical": 3, "ours_loss": 0.5, "textbrewer_loss": 0.9,
             "teacher_entropy_term": 0.4, "loss_gap": 1e-7, "max_grad_gap": 1e-8,
             "tolerance": 1e-5}  # fmt: skip
    # round 1: ours, ours_cached, ours_bf16, ours_regime, textbrewer; round 2: reversed
    speeds = iter([100.0, 200.0, 250.0, 300.0, 50.0, 60.0, 360.0, 270.0, 240.0, 90.0])

    def worker(tool: str, *_args) -> dict:
        sps = next(speeds)
        return {"steps": 3, "train_seconds": 1.0, "dev_accuracy": 0.75, "torch_threads": 1,
                "samples_per_s": sps, "samples_per_s_with_fill": sps / 2}  # fmt: skip

    monkeypatch.setattr(textbrewer_compare, "check_same_objective", lambda *_args: check)
    monkeypatch.setattr(textbrewer_compare, "run_worker", worker)
    report = textbrewer_compare.compare("teacher", tmp_path / "run", steps=3, rounds=2,
                                        batch_size=4, threads=1,
                                        results=tmp_path / "results")  # fmt: skip
    assert [r["ratio"] for r in report["rounds"]] == [2.0, 1.5]
    assert [r["ratio_cached"] for r in report["rounds"]] == [4.0, 4.0]
    assert [r["ratio_cached_with_fill"] for r in report["rounds"]] == [2.0, 2.0]
    assert [r["ratio_bf16"] for r in report["rounds"]] == [5.0, 4.5]
    assert [r["ratio_regime"] for r in report["rounds"]] == [6.0, 6.0]
    published = assert_published(tmp_path / "results" / "bench-textbrewer.md",
                                 tmp_path / "run" / "textbrewer_compare.md")  # fmt: skip
    assert ("| 1 | ours → ours_cached → ours_bf16 → ours_regime → textbrewer | 100.00 | 200.00 "
            "| 250.00 | 300.00 | 50.00 | 2.000 | 4.000 | 2.000 | 5.000 | 6.000 | 75.00% | 75.00% "
            "| 75.00% | 75.00% | 75.00% |") in published  # fmt: skip
    assert ("| 2 | textbrewer → ours_regime → ours_bf16 → ours_cached → ours | 90.00 | 240.00 "
            "| 270.00 | 360.00 | 60.00 | 1.500 |") in published  # fmt: skip
    assert "3 steps x batch 4, lr 0.0001, seed 42, 1 torch threads" in published
    assert "**ours / TextBrewer: 1.750 median" in published
    assert "with the teacher's logits cached: 4.000 (min 4.000, max 4.000), 2.000" in published
    assert "batches grouped by length): 6.000 (min 6.000, max 6.000)" in published
    assert "bfloat16 autocast (the same recipe, batches and weights): 4.750" in published
    assert "TextBrewer workarounds: a stub `tensorboardX` module" in published
