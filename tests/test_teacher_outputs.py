"""The teacher-logits cache: the same logits as running the teacher, each example computed
once across runs, and a killed pass resumed at its last shard."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from compressor import teacher_outputs
from compressor.data import Split
from compressor.distill.objective import CACHED_LOGITS, DistillObjective
from compressor.models import load_classifier
from compressor.recipe import DistillConfig, IntermediateLoss, StudentConfig
from compressor.students import make_student
from compressor.teacher_outputs import cache_dir, teacher_logits
from tests.custom_students import LABELS, TEXTS, Teacher, spread_teacher


class Counter:
    """Counts the examples a model is run on (a forward pre-hook); `limit` makes the run
    past that many examples die as a kill would."""

    def __init__(self, model: PreTrainedModel, limit: int | None = None) -> None:
        self.examples, self.limit = 0, limit
        self.handle = model.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, _module: torch.nn.Module, _args: tuple, kwargs: dict) -> None:
        if self.limit is not None and self.examples >= self.limit:
            raise KeyboardInterrupt
        self.examples += kwargs["input_ids"].shape[0]

    def __enter__(self) -> Counter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.handle.remove()


@pytest.fixture(scope="module")
def teacher(tiny_teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Teacher:
    return spread_teacher(tiny_teacher_dir, tmp_path_factory.mktemp("spread"))


def one_by_one(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    pairs: list[str] | None = None,
) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([
            model.eval()(**tokenizer(t, None if pairs is None else pairs[k],
                                     truncation=True, max_length=32,
                                     return_tensors="pt")).logits.numpy()
            for k, t in enumerate(texts)
        ])  # fmt: skip


def test_cached_logits_are_the_teachers_in_input_order(teacher: Teacher, tmp_path: Path) -> None:
    model, tokenizer = teacher
    pairs = TEXTS[::-1]
    split = Split(TEXTS, LABELS, pairs)
    got = np.stack(teacher_logits(model, tokenizer, split, tmp_path, max_length=32, batch_size=7))
    want = one_by_one(model, tokenizer, TEXTS, pairs)
    assert got.shape == (48, 2)
    # batched by length with padding vs one at a time: the same function up to float noise
    np.testing.assert_allclose(got, want, atol=2e-5)
    assert np.ptp(want[:, 0]) > 0.1  # the rows differ, so an order mix-up would show


def test_each_example_is_computed_once_across_calls(teacher: Teacher, tmp_path: Path) -> None:
    model, tokenizer = teacher
    with Counter(model) as counting:
        first = teacher_logits(model, tokenizer, Split(TEXTS[:20], LABELS[:20]), tmp_path,
                               max_length=32)  # fmt: skip
        assert counting.examples == 20
        # a larger set (the first 20 again, and a duplicate) computes only the 28 new ones
        more = Split(TEXTS + TEXTS[:1], LABELS + LABELS[:1])
        again = teacher_logits(model, tokenizer, more, tmp_path, max_length=32)
        assert counting.examples == 20 + 28
        np.testing.assert_array_equal(again[:20], first)
        np.testing.assert_array_equal(again[48], again[0])
        teacher_logits(model, tokenizer, more, tmp_path, max_length=32)
        assert counting.examples == 48


def test_digests_ending_in_a_zero_byte_are_found_again(teacher: Teacher, tmp_path: Path) -> None:
    """One example in 256 has a digest whose last byte is 0: stored as a fixed-width numpy
    string it came back shorter, so those examples were recomputed by every run."""
    model, tokenizer = teacher
    texts = [f"word {i}" for i in range(2000)]
    zero_ending = [t for t in texts if teacher_outputs._digest(t, None)[-1] == 0][:3]
    assert len(zero_ending) == 3
    split = Split(zero_ending + TEXTS[:5], [0] * 8)
    first = teacher_logits(model, tokenizer, split, tmp_path, max_length=32)
    with Counter(model) as counting:
        again = teacher_logits(model, tokenizer, split, tmp_path, max_length=32)
    assert counting.examples == 0
    np.testing.assert_array_equal(again, first)


def test_a_killed_pass_resumes_at_its_last_shard(
    teacher: Teacher,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model, tokenizer = teacher
    monkeypatch.setattr(teacher_outputs, "SHARD_EXAMPLES", 8)
    with Counter(model, limit=24), pytest.raises(KeyboardInterrupt):  # dies in the 4th shard
        teacher_logits(model, tokenizer, Split(TEXTS, LABELS), tmp_path, max_length=32,
                       batch_size=4)  # fmt: skip
    assert len(list(tmp_path.glob("shard-*.npz"))) == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no half-written file
    with Counter(model) as resumed:
        got = teacher_logits(model, tokenizer, Split(TEXTS, LABELS), tmp_path, max_length=32)
    assert resumed.examples == 48 - 24
    np.testing.assert_allclose(got, one_by_one(model, tokenizer, TEXTS), atol=2e-5)


def test_the_cache_folder_changes_with_the_teacher_and_the_length(
    tiny_teacher_dir: Path, tmp_path: Path
) -> None:
    spread = tmp_path / "spread"
    spread_teacher(tiny_teacher_dir, spread)
    folders = {
        cache_dir(tmp_path, tiny_teacher_dir, 32),
        cache_dir(tmp_path, tiny_teacher_dir, 64),
        cache_dir(tmp_path, spread, 32),
    }
    assert len(folders) == 3
    assert cache_dir(tmp_path, tiny_teacher_dir, 32) == cache_dir(tmp_path, tiny_teacher_dir, 32)


def test_cached_logits_give_the_loss_of_the_teacher_in_the_loop(
    teacher: Teacher, tmp_path: Path
) -> None:
    model, tokenizer = teacher
    torch.manual_seed(0)
    student, _ = make_student(model, tokenizer, StudentConfig(kind="cnn", hidden=16, mlp=16,
                              embedding_dim=16, cells=[[["conv3", 0, 2]]]), TEXTS)  # fmt: skip
    cfg = DistillConfig(alpha=0.7, temperature=2.0,
                        intermediate=[IntermediateLoss(name="logits_mse", weight=0.5)])  # fmt: skip
    objective = DistillObjective(model, student, cfg)
    assert not objective.reads_teacher_internals
    batch = {**tokenizer(TEXTS[:16], padding=True, truncation=True, max_length=32,
                         return_tensors="pt"), "labels": torch.tensor(LABELS[:16])}  # fmt: skip
    rows = teacher_logits(model, tokenizer, Split(TEXTS[:16], LABELS[:16]), tmp_path,
                          max_length=32)  # fmt: skip
    with Counter(model) as counting:
        live, live_parts = objective(student.eval(), batch)
        assert counting.examples == 16
        stored = torch.tensor(np.stack(rows))
        cached, cached_parts = objective(student, {**batch, CACHED_LOGITS: stored})
        assert counting.examples == 16  # the teacher did not run again
    assert cached.item() == pytest.approx(live.item(), rel=1e-4)
    assert set(cached_parts) == set(live_parts) == {"soft_kd", "hard_ce", "logits_mse",
                                                     "prediction_kl"}  # fmt: skip
    assert live.item() > 0.01


def test_terms_reading_the_teachers_layers_keep_the_teacher_in_the_loop(
    tiny_teacher_dir: Path,
) -> None:
    model, tokenizer = load_classifier(tiny_teacher_dir)
    student, _ = make_student(model, tokenizer, StudentConfig(layers=2), TEXTS)
    cfg = DistillConfig(intermediate=[IntermediateLoss(name="hidden_mse")])
    objective = DistillObjective(model, student, cfg)
    assert objective.reads_teacher_internals
    batch = {**tokenizer(TEXTS[:4], padding=True, return_tensors="pt"),
             "labels": torch.tensor(LABELS[:4]), CACHED_LOGITS: torch.zeros(4, 2)}  # fmt: skip
    with pytest.raises(RuntimeError, match="read the teacher's layers"):
        objective(student, batch)
