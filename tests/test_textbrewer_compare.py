"""The TextBrewer throughput comparison is only fair if both tools optimise one objective on
the same batches; these tests hold `check_same_objective` to that on a tiny teacher. They
skip where TextBrewer is not installed (it is no dependency; `make bench-textbrewer` adds it)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from benchmarks.experiments import textbrewer_compare
from benchmarks.experiments.textbrewer_compare import check_same_objective, shared_recipe
from tests.conftest import save_variant, write_sst2_subset

pytestmark = pytest.mark.skipif(
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


def test_textbrewer_config_gives_our_loss_and_gradients(spread_teacher: str, recipe) -> None:
    check = check_same_objective(spread_teacher, recipe)
    assert check["batches_identical"] == 3
    assert check["teacher_entropy_term"] > 0
    assert check["loss_gap"] <= check["tolerance"]
    assert check["max_grad_gap"] <= check["tolerance"]


def test_check_rejects_a_kd_weight_without_t_squared(
    spread_teacher: str, recipe, monkeypatch: pytest.MonkeyPatch
) -> None:
    configs = textbrewer_compare.textbrewer_configs

    def without_t_squared(textbrewer, recipe, out_dir):
        train_config, distill_config = configs(textbrewer, recipe, out_dir)
        distill_config.kd_loss_weight = recipe.distill.alpha
        return train_config, distill_config

    monkeypatch.setattr(textbrewer_compare, "textbrewer_configs", without_t_squared)
    with pytest.raises(RuntimeError, match="different losses"):
        check_same_objective(spread_teacher, recipe)
