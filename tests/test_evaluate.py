import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, BertForSequenceClassification

from compressor.errors import UserError
from compressor.inference import accuracy, predict_logits
from exporters.onnx import export_onnx
from tests.conftest import save_variant, sst2_rows

ROWS = sst2_rows("dev", limit=40)
TEXTS = [text for text, _ in ROWS]
LABELS = [label for _, label in ROWS]


@pytest.fixture(scope="module")
def varied_dir(tiny_teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Teacher-shaped, but with a wide init: default-init logits barely differ between
    sentences, which would let a scrambled output order go unnoticed."""
    return save_variant(
        tiny_teacher_dir, tmp_path_factory.mktemp("varied"), seed=0, initializer_range=0.3
    )


@pytest.fixture(scope="module")
def varied_onnx(varied_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(varied_dir, tmp_path_factory.mktemp("varied_onnx") / "onnx")


def _one_by_one(model_dir: Path, texts: list[str], pairs: list[str] | None = None) -> np.ndarray:
    """Unbatched, unpadded reference computed straight with transformers."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = BertForSequenceClassification.from_pretrained(model_dir).eval()
    rows = []
    with torch.no_grad():
        for i, text in enumerate(texts):
            enc = tokenizer(text, pairs[i] if pairs else None, return_tensors="pt")
            rows.append(model(**enc).logits[0].numpy())
    return np.stack(rows)


def test_batched_logits_keep_input_order(varied_dir: Path, varied_onnx: Path) -> None:
    want = _one_by_one(varied_dir, TEXTS)
    assert np.ptp(want[:, 0]) > 0.1
    for path in (varied_dir, varied_onnx):
        got = predict_logits(path, TEXTS, batch_size=7)
        assert got.shape == (40, 2) and got.dtype == np.float32
        np.testing.assert_allclose(got, want, atol=1e-4)


def test_pairs_match_unbatched_reference(varied_dir: Path, varied_onnx: Path) -> None:
    pairs = TEXTS[::-1]
    want = _one_by_one(varied_dir, TEXTS, pairs)
    np.testing.assert_allclose(predict_logits(varied_onnx, TEXTS, pairs), want, atol=1e-4)
    assert np.abs(predict_logits(varied_onnx, TEXTS) - want).max() > 1e-2


def test_truncation_to_max_length(varied_dir: Path) -> None:
    long_text = " ".join(TEXTS[:6])
    tokenizer = AutoTokenizer.from_pretrained(varied_dir)
    model = BertForSequenceClassification.from_pretrained(varied_dir).eval()
    enc = tokenizer(long_text, truncation=True, max_length=16, return_tensors="pt")
    assert enc["input_ids"].shape == (1, 16)
    with torch.no_grad():
        want = model(**enc).logits.numpy()
    got = predict_logits(varied_dir, [long_text, TEXTS[0]], max_length=16)
    np.testing.assert_allclose(got[:1], want, atol=1e-5)
    assert np.abs(predict_logits(varied_dir, [long_text]) - want).max() > 1e-3


def test_threads_setting_does_not_leak(varied_dir: Path, varied_onnx: Path) -> None:
    before = torch.get_num_threads()
    for path in (varied_dir, varied_onnx):
        np.testing.assert_allclose(
            predict_logits(path, TEXTS, threads=1), predict_logits(path, TEXTS), atol=1e-5
        )
    assert torch.get_num_threads() == before


def test_accuracy_is_fraction_of_argmax_hits(varied_onnx: Path) -> None:
    predicted = predict_logits(varied_onnx, TEXTS).argmax(axis=1)
    half_right = [int(p) if i < 10 else 1 - int(p) for i, p in enumerate(predicted)]
    assert accuracy(varied_onnx, TEXTS, None, half_right) == 0.25
    assert accuracy(varied_onnx, TEXTS, None, LABELS) == float(np.mean(predicted == LABELS))


def test_separate_tokenizer_dir(varied_dir: Path, varied_onnx: Path, tmp_path: Path) -> None:
    lone = tmp_path / "model.onnx"
    shutil.copy(varied_onnx, lone)
    with pytest.raises(UserError, match="no usable tokenizer"):
        predict_logits(lone, TEXTS)
    np.testing.assert_allclose(
        predict_logits(lone, TEXTS, tokenizer_dir=varied_dir),
        predict_logits(varied_onnx, TEXTS),
        atol=1e-6,
    )


def test_bad_inputs_are_user_errors(varied_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    for path in (tmp_path / "missing.onnx", tmp_path / "notes.txt", tmp_path):
        with pytest.raises(UserError, match="neither a model folder"):
            predict_logits(path, TEXTS)
    with pytest.raises(UserError, match="one pair per text"):
        predict_logits(varied_dir, TEXTS, TEXTS[:3])
    with pytest.raises(UserError, match="one label per text"):
        accuracy(varied_dir, TEXTS, None, LABELS[:3])
    weightless = tmp_path / "weightless"
    weightless.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        shutil.copy(varied_dir / name, weightless / name)
    with pytest.raises(UserError, match="could not load a classifier"):
        predict_logits(weightless, TEXTS)
