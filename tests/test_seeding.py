"""A recipe and its seed fix the result, whatever ran earlier in the process: the
benchmarks run many models in one process, and their rows must equal the same runs alone."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import BertModel, BertTokenizerFast

from benchmarks.experiments.metakd_compare import RECIPES
from compressor.metakd.run import metakd
from compressor.pipeline import finetune
from compressor.recipe import load_recipe
from compressor.runfolder import RunFolder
from tests.conftest import write_sst2_subset
from tests.test_metakd import write_slice


def _disturb_the_global_generators() -> None:
    torch.rand(1000)
    random.random()


def _differing(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> list[str]:
    """Names of the tensors that differ (empty when the two state dicts are identical)."""
    assert a.keys() == b.keys()
    return [k for k in a if not torch.equal(a[k], b[k])]


def test_a_fresh_classifier_head_is_the_same_after_other_work(
    tiny_teacher_dir: Path, tmp_path: Path
) -> None:
    backbone = tmp_path / "backbone"  # no classifier: finetune adds a fresh head
    BertModel.from_pretrained(tiny_teacher_dir).save_pretrained(backbone)
    BertTokenizerFast.from_pretrained(tiny_teacher_dir).save_pretrained(backbone)
    (tmp_path / "data").mkdir()
    data = write_sst2_subset(tmp_path / "data", 32, 16)
    recipe = load_recipe(None, {"data.source": str(data), "data.max_length": 32,
                                "finetune.max_steps": 2, "finetune.batch_size": 16,
                                "finetune.eval_every": 2})  # fmt: skip
    models = []
    for name in ("first", "second"):
        _disturb_the_global_generators()
        finetune(str(backbone), recipe, tmp_path / name, overwrite=False, resume=False)
        models.append(load_file(tmp_path / name / "model" / "model.safetensors"))
    assert "classifier.weight" in models[0]
    assert _differing(*models) == []
    trained = RunFolder.open(tmp_path / "first").result("train")
    # throughput over the optimizer steps: the samples they saw over the seconds they took
    assert trained["train_samples_per_s"] == pytest.approx(
        trained["steps"] * recipe.finetune.batch_size / trained["train_seconds"], rel=0.05
    )


def test_meta_kd_runs_are_the_same_after_other_work(tiny_teacher_dir: Path, tmp_path: Path) -> None:
    data = write_slice(tmp_path / "data", 20)
    recipe = load_recipe(
        RECIPES / "metakd.yaml",
        {"data.source": str(data), "data.max_length": 32, "metakd.target_domain": "imdb",
         "finetune.max_steps": 2, "finetune.batch_size": 8, "train.max_steps": 2,
         "train.batch_size": 8, "student.layers": 2},
    )  # fmt: skip
    heads, students = [], []
    for name in ("first", "second"):
        _disturb_the_global_generators()
        metakd(str(tiny_teacher_dir), recipe, tmp_path / name, overwrite=False, resume=False)
        heads.append(torch.load(tmp_path / name / "teacher_domain_head.pt", weights_only=True))
        students.append(load_file(tmp_path / name / "model" / "model.safetensors"))
    assert _differing(*heads) == []
    assert _differing(*students) == []
