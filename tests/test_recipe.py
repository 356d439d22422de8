import hashlib
import json
from pathlib import Path

import pytest

from compressor.errors import UserError
from compressor.recipe import Recipe, load_recipe


def test_defaults_and_overrides_merge_in_order(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("train:\n  lr: 0.001\n  batch_size: 8\nstudent:\n  layers: 2\n")
    recipe = load_recipe(path, {"train.batch_size": 16, "distill.alpha": None})
    assert recipe.train.lr == 0.001
    assert recipe.train.batch_size == 16  # the flag beats the file
    assert recipe.student.layers == 2
    assert recipe.distill.alpha == Recipe().distill.alpha  # None means "not given"
    assert recipe.finetune.lr == Recipe().finetune.lr


def test_unknown_key_is_rejected_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("train:\n  learning_rate: 0.1\n")
    with pytest.raises(UserError, match=r"train\.learning_rate: unknown key"):
        load_recipe(path)


def test_bad_value_is_rejected_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("distill:\n  alpha: 1.5\n")
    with pytest.raises(UserError, match=r"distill\.alpha"):
        load_recipe(path)


def test_unknown_loss_name_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("distill:\n  intermediate:\n    - name: hiden_mse\n")
    with pytest.raises(UserError, match=r"distill\.intermediate\.0\.name.*hidden_mse"):
        load_recipe(path)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        load_recipe(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_recipe(bad)


def test_hash_changes_with_settings_only() -> None:
    assert Recipe().hash() == Recipe().hash()
    assert load_recipe(None, {"train.lr": 0.5}).hash() != Recipe().hash()
    # a setting added later, at its default, keeps older runs' hashes (so they resume)
    assert load_recipe(None, {"quantize.reduce_range": False}).hash() != Recipe().hash()
    assert load_recipe(None, {"student.hidden": 150}).hash() != Recipe().hash()
    assert load_recipe(None, {"student.cells": [[["zero", 0, 2]]]}).hash() != Recipe().hash()
    assert load_recipe(None, {"data.columns": ["sentence", "label"]}).hash() != Recipe().hash()
    assert load_recipe(None, {"train.group_by_length": False}).hash() != Recipe().hash()
    assert load_recipe(None, {"quantize.max_drop": 0.5}).hash() != Recipe().hash()
    assert load_recipe(None, {"export.e2e": False}).hash() != Recipe().hash()
    assert load_recipe(None, {"distill.teacher_states_mb": 0}).hash() != Recipe().hash()
    assert load_recipe(None, {"data.task": "token-classification"}).hash() != Recipe().hash()
    assert load_recipe(None, {"data.tag_column": 3}).hash() != Recipe().hash()
    assert load_recipe(None, {"augment.tag_prob": 0.5}).hash() != Recipe().hash()
    assert (load_recipe(None, {"student.freeze_word_embeddings": False}).hash()
            != Recipe().hash())  # fmt: skip
    cnn = {"student.kind": "cnn"}
    assert (load_recipe(None, cnn | {"adabert.enabled": True}).hash()
            != load_recipe(None, cnn).hash())  # fmt: skip
    # the search section shapes candidates, each with a recipe of its own: never hashed
    assert load_recipe(None, {"search.trial_steps": 9}).hash() == Recipe().hash()
    tree = Recipe().model_dump(mode="json")
    del tree["metakd"], tree["quantize"]["reduce_range"], tree["data"]["columns"], tree["search"]
    del tree["quantize"]["max_drop"], tree["quantize"]["max_drop_samples"]
    del tree["adabert"], tree["finetune"]["group_by_length"]  # train's is on by default
    del tree["export"]["e2e"], tree["distill"]["teacher_states_mb"]
    del tree["data"]["task"], tree["data"]["tag_column"]  # added with token classification
    del tree["augment"]["tag_prob"]  # added with tagged augmentation
    for key in ("kind", "hidden", "mlp", "embedding_dim", "siamese", "cells"):
        del tree["student"][key]  # kinds' keys, left out at their defaults
    tree["student"]["freeze_word_embeddings"] = True  # hashed resolved, unset by default
    blob = json.dumps(tree, sort_keys=True).encode()
    assert Recipe().hash() == hashlib.sha256(blob).hexdigest()[:16]


def test_recipes_keep_the_hashes_they_had_before_the_registries() -> None:
    """Runs started before the recipe validated names through registries (and before
    student.kind existed) must stay resumable: their hashes, computed at 47b652a, given the
    training settings that were the defaults then (the retention regime is now)."""
    recipes = Path(__file__).parents[1] / "recipes"
    before_regime = {"student.freeze_word_embeddings": False, "train.epochs": 1,
                     "train.group_by_length": False}  # fmt: skip
    old_defaults = {**before_regime, "train.lr": 1e-4}
    assert load_recipe(None, old_defaults).hash() == "31301e4fba154d7d"
    # the demo recipe as it was then (it names its own learning rate)
    assert load_recipe(recipes / "demo.yaml", before_regime).hash() == "9b6f278f70f225e3"
    assert load_recipe(recipes / "tinybert.yaml", old_defaults).hash() == "cbbf93d76d984caf"


def test_the_default_trains_under_the_retention_regime() -> None:
    recipe = Recipe()
    assert (recipe.train.epochs, recipe.train.lr, recipe.train.group_by_length) == (3, 2e-4, True)
    assert recipe.finetune.group_by_length is False  # the teacher's training is the user's
    assert recipe.student.frozen_word_embeddings  # a transformer cut from the teacher
    for unmeasured in ({"student.kind": "bilstm"}, {"student.model": "some/pretrained"}):
        assert not load_recipe(None, unmeasured).student.frozen_word_embeddings
    explicit = load_recipe(None, {"student.freeze_word_embeddings": True})
    assert explicit.hash() == recipe.hash()  # unset and true freeze a cut student alike
    trained = load_recipe(None, {"student.freeze_word_embeddings": False})
    assert trained.hash() != recipe.hash() and not trained.student.frozen_word_embeddings


def test_registered_names_are_checked_with_their_key() -> None:
    with pytest.raises(UserError, match=r"student\.kind: unknown student kind 'gru'.*transformer"):
        load_recipe(None, {"student.kind": "gru"})
    with pytest.raises(UserError, match=r"prune\.criterion: unknown importance criterion"):
        load_recipe(None, {"prune.criterion": "magnitude"})
    with pytest.raises(UserError, match=r"quantize\.mode: unknown quantization mode 'int3'"):
        load_recipe(None, {"quantize.mode": "int3"})
    with pytest.raises(UserError, match=r"benchmark\.target: unknown benchmark target 'tpu'"):
        load_recipe(None, {"benchmark.target": "tpu"})
    assert load_recipe(None, {"quantize.mode": "none"}).quantize.mode == "none"
    staged = {"stages": [{"name": "a", "distill": {"intermediate": [{"name": "nope"}]}}]}
    with pytest.raises(UserError, match=r"stages\.0\.distill\.intermediate\.0\.name"):
        load_recipe(None, staged)


def test_shipped_recipes_validate() -> None:
    shipped = sorted((Path(__file__).parents[1] / "recipes").glob("*.yaml"))
    assert shipped, "recipes/ ships at least the demo recipe"
    for path in shipped:
        assert isinstance(load_recipe(path), Recipe)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"train": 5, "train.lr": 0.1}, r"^setting 'train\.lr': train is 5, not a section"),
        ({"train..lr": 0.1}, r"^setting 'train\.\.lr' has an empty name part"),
    ],
)
def test_settings_that_cannot_nest_are_one_line_errors(overrides: dict, match: str) -> None:
    with pytest.raises(UserError, match=match):
        load_recipe(None, overrides)
