"""The teacher-states store: the teacher's hidden states and logits at real tokens, read back
into padded batches, the same loss as running the teacher, one pass across runs, and a limit
past which nothing is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from compressor import pipeline
from compressor.data import Split
from compressor.distill.objective import DistillObjective
from compressor.distill.teacher_states import STATE_INDEX, store_bytes, teacher_states
from compressor.models import load_classifier
from compressor.recipe import DistillConfig, IntermediateLoss, StudentConfig, load_recipe
from compressor.runfolder import RunFolder
from compressor.students import make_student
from tests.conftest import save_variant, write_sst2_subset
from tests.custom_students import LABELS, TEXTS
from tests.test_teacher_outputs import Counter

LAYERS = (0, 2, 4)
ROWS = [5, 0, 17, 30, 41]


@pytest.fixture(scope="module")
def spread(tiny_teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny teacher (4 layers, width 32) with weights at std 0.3, so hidden states and
    logits differ from example to example and a row mix-up would show."""
    return save_variant(tiny_teacher_dir, tmp_path_factory.mktemp("spread"), seed=3,
                        initializer_range=0.3)  # fmt: skip


def _store(folder: Path, root: Path, limit: int = 2**30, split: Split | None = None):
    model, tokenizer = load_classifier(folder)
    states, size = teacher_states(model, folder, tokenizer, split or Split(TEXTS, LABELS), root,
                                  layers=LAYERS, max_length=32, limit_bytes=limit,
                                  batch_size=7)  # fmt: skip
    return model, tokenizer, states, size


def _batch(tokenizer: PreTrainedTokenizerBase, rows: list[int]) -> dict[str, torch.Tensor]:
    enc = tokenizer([TEXTS[k] for k in rows], truncation=True, max_length=32, padding=True,
                    return_tensors="pt")  # fmt: skip
    return dict(enc)


def _live(model: PreTrainedModel, batch: dict[str, torch.Tensor]):
    with torch.no_grad():
        return model.eval()(**batch, output_hidden_states=True)


def test_stored_states_are_the_teachers_at_real_tokens(spread: Path, tmp_path: Path) -> None:
    model, tokenizer, states, size = _store(spread, tmp_path)
    assert states is not None
    lengths = [len(tokenizer(t, truncation=True, max_length=32)["input_ids"]) for t in TEXTS]
    assert size == sum(lengths) * 3 * 32 * 2  # tokens x layers x width x float16
    batch = _batch(tokenizer, ROWS)
    live = _live(model, batch)
    got = states.hidden_states(torch.tensor(ROWS), batch["attention_mask"])
    real = batch["attention_mask"].bool()
    assert (~real).sum() > 20  # the batch has pads, so padding is exercised
    assert got[1] is None and got[3] is None and len(got) == 5
    for layer in LAYERS:
        want = live.hidden_states[layer]
        err = (got[layer] - want)[real].abs()
        # float16 keeps 11 significant bits: error within 2^-11 of each value (+ batching noise)
        assert bool((err <= want[real].abs() * 2**-11 + 1e-4).all()), (layer, err.max())
        assert float(got[layer][~real].abs().max()) == 0.0
        assert float(want[real].std()) > 0.5  # values of unit scale, not near-zero ones
    np.testing.assert_allclose(states.logits[ROWS], live.logits.numpy(), atol=2e-5)


def test_the_objective_gives_the_teachers_loss_without_running_it(
    spread: Path, tmp_path: Path
) -> None:
    model, tokenizer, states, _ = _store(spread, tmp_path)
    torch.manual_seed(0)
    student, _ = make_student(model, tokenizer, StudentConfig(layers=2), TEXTS[:8])
    objective = DistillObjective(model, student, DistillConfig())  # KD + hidden MSE, uniform
    assert objective.teacher_layers == LAYERS  # embeddings and teacher layers 2 and 4
    objective.use_states(states)
    batch = {**_batch(tokenizer, ROWS), "labels": torch.tensor([LABELS[k] for k in ROWS])}
    student.eval()
    live_loss, live_parts = objective(student, dict(batch))
    with Counter(model) as counting:
        stored_loss, stored_parts = objective(student, {**batch, STATE_INDEX: torch.tensor(ROWS)})
    assert counting.examples == 0
    assert live_parts["hidden_mse"] > 0.1
    assert stored_parts["hidden_mse"] == pytest.approx(live_parts["hidden_mse"], rel=2e-3)
    assert stored_parts["soft_kd"] == pytest.approx(live_parts["soft_kd"], rel=1e-4)
    assert stored_loss.item() == pytest.approx(live_loss.item(), rel=2e-3)


def test_terms_that_read_attentions_keep_the_teacher_running(spread: Path) -> None:
    model, tokenizer = load_classifier(spread)
    student, _ = make_student(model, tokenizer, StudentConfig(layers=2), TEXTS[:8])
    attention = DistillConfig(intermediate=[IntermediateLoss(name="hidden_mse"),
                                            IntermediateLoss(name="attention_mse")])  # fmt: skip
    assert DistillObjective(model, student, attention).teacher_layers is None
    assert DistillObjective(model, student, DistillConfig(intermediate=[])).teacher_layers is None


def test_one_pass_across_runs_and_none_over_the_limit(spread: Path, tmp_path: Path) -> None:
    _, _, first, size = _store(spread, tmp_path / "a")
    model, tokenizer = load_classifier(spread)
    with Counter(model) as counting:
        again, _ = teacher_states(model, spread, tokenizer, Split(TEXTS, LABELS), tmp_path / "a",
                                  layers=LAYERS, max_length=32, limit_bytes=size)  # fmt: skip
    assert counting.examples == 0 and again is not None
    np.testing.assert_array_equal(np.asarray(again.states), np.asarray(first.states))
    # other examples are another store; one byte under the size writes nothing
    _, _, other, _ = _store(spread, tmp_path / "a", split=Split(TEXTS[:10], LABELS[:10]))
    assert other is not None and len(other.offsets) == 11
    assert len(list((tmp_path / "a").iterdir())) == 2
    _, _, refused, refused_size = _store(spread, tmp_path / "b", limit=size - 1)
    assert refused is None and refused_size == size
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())
    assert store_bytes([3, 4], (0, 1), 10) == 7 * 2 * 10 * 2


def test_a_run_says_it_stored_the_teachers_pass(tiny_teacher_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    data = write_sst2_subset(tmp_path / "data", 64, 32)
    base = {"data.source": str(data), "train.max_steps": 4, "train.batch_size": 16,
            "train.eval_every": 2, "data.max_length": 32, "student.layers": 2,
            "quantize.mode": "none"}  # fmt: skip
    out = tmp_path / "run"
    pipeline.compress(str(tiny_teacher_dir), load_recipe(None, base), out, overwrite=False,
                      resume=False, skip_benchmark=True, skip_export=True)  # fmt: skip
    teacher_pass = RunFolder.open(out).result("distill")["stages"][0]["teacher_pass"]
    # the tiny teacher has 4 layers: a 2-layer student maps embeddings, layers 2 and 4
    assert teacher_pass.startswith("stored hidden states (layers 0, 2, 4;")
    report = (out / "report.md").read_text(encoding="utf-8")
    assert f"Teacher's pass: {teacher_pass}" in report
    assert "Word embeddings: frozen" in report  # the default for a cut transformer
    # turning the store off is a setting of its own, so a resumed run cannot mix the two
    off = load_recipe(None, {**base, "distill.teacher_states_mb": 0})
    assert off.hash() != load_recipe(None, base).hash()
