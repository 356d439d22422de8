"""The transformer student kind through its seam: build, save / load, ONNX export and the
adaptor the distillation losses read through."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from transformers import AutoTokenizer, PreTrainedModel

from compressor.archs import arch_of
from compressor.errors import UserError
from compressor.models import load_classifier
from compressor.recipe import StudentConfig
from compressor.registry import STUDENT_KINDS
from compressor.students import Wants, kind_named, kind_of, load_trained, make_student
from compressor.students.transformer import TRANSFORMER
from tests.conftest import build_distilbert, save_variant, sst2_rows

TEXTS = [text for text, _ in sst2_rows("dev", limit=6)]


@pytest.fixture(scope="module")
def spread_teacher(tiny_teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Weights at std 0.3: default-init tiny models give near-equal logits everywhere, which
    would let a wrong layer or a dropped input pass unnoticed."""
    out = tmp_path_factory.mktemp("spread_teacher")
    return save_variant(tiny_teacher_dir, out, seed=3, initializer_range=0.3)


def _logits(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(**batch).logits


def _layer_params(model: PreTrainedModel, index: int) -> list[torch.Tensor]:
    return list(arch_of(model).encoder_layers(model)[index].parameters())


def test_kinds_are_listed_and_unknown_names_are_refused() -> None:
    assert STUDENT_KINDS.names() == ["bilstm", "cnn", "transformer"]
    assert kind_named("transformer") is TRANSFORMER
    with pytest.raises(
        UserError, match="unknown student kind 'gru' — known: bilstm, cnn, transformer"
    ):
        kind_named("gru")


@pytest.mark.parametrize("family", ["bert", "distilbert"])
def test_a_cut_student_holds_the_chosen_teacher_layers(
    family: str, spread_teacher: Path, tmp_path: Path
) -> None:
    folder = spread_teacher if family == "bert" else build_distilbert(tmp_path / "db", 200)
    teacher, tokenizer = load_classifier(folder)
    if family == "distilbert":  # 2 layers: cut one, the second
        cfg, chosen = StudentConfig(layers=1, init=[1]), [1]
    else:
        cfg, chosen = StudentConfig(layers=2, init=[0, 3]), [0, 3]
    student, student_tok = make_student(teacher, tokenizer, cfg, TEXTS)
    assert student_tok is tokenizer and student.config.num_hidden_layers == len(chosen)
    assert len(arch_of(student).encoder_layers(student)) == len(chosen)
    for s_idx, t_idx in enumerate(chosen):
        for p_s, p_t in zip(
            _layer_params(student, s_idx), _layer_params(teacher, t_idx), strict=True
        ):
            assert torch.equal(p_s, p_t)
    assert torch.equal(student.classifier.weight, teacher.classifier.weight)


def test_save_then_load_gives_identical_logits(spread_teacher: Path, tmp_path: Path) -> None:
    teacher, tokenizer = load_classifier(spread_teacher)
    student, _ = make_student(teacher, tokenizer, StudentConfig(layers=2), TEXTS)
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    kind = kind_of(student)
    assert kind is TRANSFORMER
    kind.save(student, tokenizer, tmp_path / "student")
    assert kind_of(tmp_path / "student") is TRANSFORMER
    reloaded = load_trained(tmp_path / "student")
    assert type(reloaded) is type(student) and reloaded.config.num_hidden_layers == 2
    before, after = _logits(student, batch), _logits(reloaded, batch)
    assert before.std() > 0.1  # spread logits, so equality means something
    assert torch.equal(before, after)
    run = tmp_path / "run"
    shutil.copytree(tmp_path / "student", run / "model")  # a run folder resolves to model/
    assert torch.equal(_logits(load_trained(run), batch), before)


def test_a_folder_with_custom_code_is_no_transformer(spread_teacher: Path, tmp_path: Path) -> None:
    custom = shutil.copytree(spread_teacher, tmp_path / "custom")
    config = json.loads((custom / "config.json").read_text())
    config["auto_map"] = {"AutoModelForSequenceClassification": "modeling_lstm.LSTMClassifier"}
    (custom / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        UserError, match=r"custom is of no known student kind \(known: bilstm, cnn, transformer\)"
    ):
        kind_of(custom)


def test_onnx_export_matches_pytorch_on_real_sentences(
    spread_teacher: Path, tmp_path: Path
) -> None:
    teacher, tokenizer = load_classifier(spread_teacher)
    student, _ = make_student(teacher, tokenizer, StudentConfig(layers=2), TEXTS)
    TRANSFORMER.save(student, tokenizer, tmp_path / "student")
    (tmp_path / "onnx").mkdir()
    path = TRANSFORMER.export_onnx(tmp_path / "student", tmp_path / "onnx", 18)
    assert path == tmp_path / "onnx" / "model.onnx" and path.is_file()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_tok = AutoTokenizer.from_pretrained(path.parent)  # the copy the exporter wrote
    enc = onnx_tok(TEXTS, padding=True, return_tensors="np")
    feeds = {i.name: enc[i.name].astype(np.int64) for i in session.get_inputs()}
    onnx_logits = session.run(["logits"], feeds)[0]
    torch_logits = _logits(student, tokenizer(TEXTS, padding=True, return_tensors="pt"))
    assert np.abs(onnx_logits - torch_logits.numpy()).max() < 1e-5
    assert (onnx_logits.argmax(1) == torch_logits.numpy().argmax(1)).all()


@pytest.mark.parametrize("family", ["bert", "distilbert"])
def test_the_adaptor_returns_what_the_losses_read(
    family: str, spread_teacher: Path, tmp_path: Path
) -> None:
    folder = spread_teacher if family == "bert" else build_distilbert(tmp_path / "db", 200)
    model, tokenizer = load_classifier(folder)
    model.eval()
    config = model.config
    layers, width, heads = config.num_hidden_layers, config.hidden_size, config.num_attention_heads
    # a BERT tokenizer's batch: token_type_ids too, which DistilBERT's forward does not take
    batch = dict(
        tokenizer(TEXTS[:3], padding=True, return_tensors="pt", return_token_type_ids=True)
    )
    n, seq = batch["input_ids"].shape
    kind = kind_of(model)
    assert kind.dims(model) == (layers, width)
    with torch.no_grad():
        bare = kind.adapt(model, batch, Wants())
        full = kind.adapt(model, batch, Wants(hidden_states=True, attentions=True, qkv=True))
    assert bare.logits.shape == (n, 2)
    assert bare.hidden_states is bare.attentions is bare.qkv is None
    torch.testing.assert_close(full.logits, bare.logits)
    assert len(full.hidden_states) == layers + 1
    assert all(h.shape == (n, seq, width) for h in full.hidden_states)
    assert len(full.attentions) == layers
    assert all(a.shape == (n, heads, seq, seq) for a in full.attentions)
    assert len(full.qkv) == layers
    for entry in full.qkv:
        assert entry.q.shape == entry.k.shape == entry.v.shape == (n, heads, seq, width // heads)
    # the last layer's attention probabilities, rebuilt from the hooked Q and K
    q, k = full.qkv[-1].q, full.qkv[-1].k
    additive = (1 - batch["attention_mask"][:, None, None, :].float()) * torch.finfo(
        torch.float32
    ).min
    probs = ((q @ k.transpose(-1, -2)) / (width // heads) ** 0.5 + additive).softmax(-1)
    torch.testing.assert_close(probs, full.attentions[-1], atol=1e-5, rtol=0)
