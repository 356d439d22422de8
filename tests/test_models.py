import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from compressor.errors import UserError
from compressor.models import load_classifier, resolve_model_dir
from compressor.recipe import StudentConfig
from compressor.students.transformer import build_student


def test_student_copies_the_chosen_teacher_layers(tiny_teacher_dir: Path) -> None:
    teacher, _ = load_classifier(tiny_teacher_dir)
    student = build_student(teacher, StudentConfig(layers=2, init=[1, 3]))
    assert student.config.num_hidden_layers == 2
    t_layers, s_layers = teacher.bert.encoder.layer, student.bert.encoder.layer
    for s_idx, t_idx in enumerate([1, 3]):
        for (name, p_s), (_, p_t) in zip(
            s_layers[s_idx].named_parameters(), t_layers[t_idx].named_parameters(), strict=True
        ):
            assert torch.equal(p_s, p_t), name
    assert torch.equal(student.classifier.weight, teacher.classifier.weight)
    assert torch.equal(
        student.bert.embeddings.word_embeddings.weight,
        teacher.bert.embeddings.word_embeddings.weight,
    )


def test_full_depth_student_reproduces_teacher_logits(tiny_teacher_dir: Path) -> None:
    teacher, tok = load_classifier(tiny_teacher_dir)
    student = build_student(teacher, StudentConfig(layers=4, init="first"))
    batch = tok(["a charming journey", "bleak"], padding=True, return_tensors="pt")
    teacher.eval(), student.eval()
    torch.testing.assert_close(student(**batch).logits, teacher(**batch).logits)


def test_student_is_a_plain_hf_model(tiny_teacher_dir: Path, tmp_path: Path) -> None:
    teacher, _ = load_classifier(tiny_teacher_dir)
    student = build_student(teacher, StudentConfig(layers=2))
    student.save_pretrained(tmp_path)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert reloaded.config.num_hidden_layers == 2


def test_backbone_gets_a_fresh_head_with_label_names(tiny_teacher_dir: Path) -> None:
    model, _ = load_classifier(tiny_teacher_dir, num_labels=3, label_names=["a", "b", "c"])
    assert model.config.num_labels == 3
    assert model.config.id2label == {0: "a", 1: "b", 2: "c"}


def test_model_folder_errors(tiny_teacher_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        resolve_model_dir(tmp_path / "nope")
    no_weights = tmp_path / "no_weights"
    shutil.copytree(tiny_teacher_dir, no_weights)
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(UserError, match="no weights"):
        resolve_model_dir(no_weights)
    with pytest.raises(UserError, match=r"no config\.json"):
        resolve_model_dir(tmp_path)
    run = tmp_path / "run"
    shutil.copytree(tiny_teacher_dir, run / "model")
    assert resolve_model_dir(run) == str(run / "model")


def test_unsupported_architecture_is_refused(tmp_path: Path) -> None:
    from transformers import GPT2Config, GPT2ForSequenceClassification

    GPT2ForSequenceClassification(GPT2Config(n_layer=1, n_embd=16, n_head=2)).save_pretrained(
        tmp_path
    )
    with pytest.raises(UserError, match="'gpt2' is not supported"):
        load_classifier(tmp_path)
