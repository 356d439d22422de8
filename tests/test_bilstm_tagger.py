"""The `bilstm` kind as a tagger (for a token-classification teacher): each token's logits
come from its own forward and backward states, put back in reading order; pads reach no
real token; logits terms read the labelled word pieces only; and stock transformers loads the
saved folder by `AutoModelForTokenClassification` without this project."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from compressor.distill.objective import DistillObjective
from compressor.errors import UserError
from compressor.models import load_classifier
from compressor.recipe import DistillConfig, IntermediateLoss, StudentConfig
from compressor.students import kind_named, kind_of, load_trained, make_student
from compressor.students.bilstm import BILSTM
from compressor.students.modeling_bilstm import BiLSTMForTokenClassification
from compressor.tasks import IGNORED
from tests.conftest import CONLL_TAGS, save_tagger
from tests.custom_students import Teacher, logits_of, run_in_clean_process

SMALL = StudentConfig(kind="bilstm", hidden=12, mlp=16)
TAGS = CONLL_TAGS
SENTENCES = [
    "eu rejects german call to boycott british lamb",
    "peter blackburn",
    "the european commission said on thursday it disagreed with german advice",
    "brussels",
]


@pytest.fixture(scope="module")
def tagger_teacher(tagger_backbone: Path, tmp_path_factory: pytest.TempPathFactory) -> Teacher:
    """An untrained BERT tagger with CoNLL's tags and spread weights (std 0.3), so that
    students built on its embeddings give logits that differ between tokens."""
    folder = tmp_path_factory.mktemp("tagger")
    return load_classifier(save_tagger(tagger_backbone, folder, seed=3, initializer_range=0.3))


@pytest.fixture
def student(tagger_teacher: Teacher) -> BiLSTMForTokenClassification:
    torch.manual_seed(0)
    model, _ = make_student(*tagger_teacher, SMALL, SENTENCES)
    with torch.no_grad():  # a random BiLSTM's logits differ little between tokens
        model.classifier.weight *= 50
    return model


def reference_logits(model: BiLSTMForTokenClassification, ids: torch.Tensor) -> torch.Tensor:
    """One unpadded sentence through the same weights the textbook way: the backward LSTM
    reads the reversed tokens and its states are flipped back before the concatenation."""
    embedded = model.embeddings(ids[None])
    forward, _ = model.forward_lstm(embedded)
    backward, _ = model.backward_lstm(embedded.flip(1))
    states = torch.cat([forward, backward.flip(1)], dim=-1)
    return model.classifier(torch.relu(model.mlp(states)))[0]


def test_a_tagger_teacher_gets_a_tagging_bilstm(tagger_teacher: Teacher) -> None:
    model, tokenizer = tagger_teacher
    student, student_tok = make_student(model, tokenizer, SMALL, SENTENCES)
    assert isinstance(student, BiLSTMForTokenClassification) and student_tok is tokenizer
    assert student.config.id2label == model.config.id2label and student.mlp.in_features == 24
    assert BILSTM.describe(student).startswith("BiLSTM tagger, 12 units per direction")
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    assert logits_of(student, batch).shape == (4, batch["input_ids"].shape[1], len(TAGS))
    assert kind_named("bilstm").serves("token-classification")
    assert not kind_named("cnn").serves("token-classification")
    with pytest.raises(UserError, match=r"a tagger reads one sequence — set student\.siamese"):
        make_student(model, tokenizer, SMALL.model_copy(update={"siamese": True}), SENTENCES)
    with pytest.raises(UserError, match="a cnn student has no token-classification head"):
        make_student(model, tokenizer, StudentConfig(kind="cnn", hidden=8, mlp=8), SENTENCES)


def test_each_token_reads_both_directions_in_place(
    student: BiLSTMForTokenClassification, tagger_teacher: Teacher
) -> None:
    tokenizer = tagger_teacher[1]
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    assert (batch["attention_mask"] == 0).sum() > 10
    padded = logits_of(student, batch)
    assert padded[0, :, 0].std() > 0.1  # tokens differ, so equality below means something
    for row, sentence in enumerate(SENTENCES):
        ids = tokenizer(sentence, return_tensors="pt")["input_ids"][0]
        with torch.no_grad():
            expected = reference_logits(student.eval(), ids)
        assert (padded[row, : len(ids)] - expected).abs().max() < 1e-5, sentence
    # the first token's logits depend on the last one (the backward direction reaches it)
    changed = batch["input_ids"].clone()
    changed[0, 8] = tokenizer.convert_tokens_to_ids("brussels")
    moved = logits_of(student, {**batch, "input_ids": changed})
    assert (moved[0, 1] - padded[0, 1]).abs().max() > 1e-3
    assert torch.equal(moved[1:], padded[1:])


def test_cross_entropy_skips_ignored_positions(
    student: BiLSTMForTokenClassification, tagger_teacher: Teacher
) -> None:
    batch = tagger_teacher[1](SENTENCES[:2], padding=True, return_tensors="pt")
    labels = torch.full_like(batch["input_ids"], IGNORED)
    labels[0, 1], labels[0, 3], labels[1, 1] = 2, 8, 3
    out = student.eval()(**batch, labels=labels)
    rows = out.logits[[0, 0, 1], [1, 3, 1]]
    expected = torch.nn.functional.cross_entropy(rows, torch.tensor([2, 8, 3]))
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_logits_mse_reads_the_labelled_pieces_only(
    student: BiLSTMForTokenClassification, tagger_teacher: Teacher
) -> None:
    teacher, tokenizer = tagger_teacher
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    labels = torch.full_like(batch["input_ids"], IGNORED)
    labels[:, 1] = 8  # the first word of each sentence
    labels[0, 2] = 0
    cfg = DistillConfig(prediction_weight=0.0, intermediate=[IntermediateLoss(name="logits_mse")])
    objective = DistillObjective(teacher, student, cfg)
    loss, parts = objective(student.eval(), {**batch, "labels": labels})
    labelled = labels != IGNORED
    s_rows, t_rows = logits_of(student, batch)[labelled], logits_of(teacher, batch)[labelled]
    assert len(s_rows) == 5
    assert loss.item() == pytest.approx((s_rows - t_rows).pow(2).sum(-1).mean().item(), rel=1e-5)
    assert parts["logits_mse"] == pytest.approx(loss.item())


def test_the_saved_tagger_loads_without_this_project(
    student: BiLSTMForTokenClassification, tagger_teacher: Teacher, tmp_path: Path
) -> None:
    tokenizer = tagger_teacher[1]
    folder = tmp_path / "student"
    BILSTM.save(student, tokenizer, folder)
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["BiLSTMForTokenClassification"]
    assert config["auto_map"]["AutoModelForTokenClassification"] == (
        "modeling_bilstm.BiLSTMForTokenClassification"
    )
    assert kind_of(folder) is BILSTM
    assert BILSTM.describe(load_trained(folder)).startswith("BiLSTM tagger, 12 units")
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    out = run_in_clean_process(folder, batch, tmp_path, "AutoModelForTokenClassification")
    assert out["class"] == "BiLSTMForTokenClassification"
    assert torch.allclose(torch.tensor(out["logits"]), logits_of(student, batch), atol=1e-5)
