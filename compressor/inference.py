"""One inference path for every artifact (PyTorch folder or ONNX file).

Accuracy, parity and the report all score models through `predict_logits`, so a difference
between two artifacts can only come from the models, never from two tokenisation or batching
code paths drifting apart.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from transformers import BatchEncoding, PreTrainedTokenizerBase

from compressor.errors import UserError
from compressor.models import load_saved_classifier, load_tokenizer

Batches = Iterator[tuple[np.ndarray, BatchEncoding]]
Parts = list[tuple[np.ndarray, np.ndarray]]


def _batches(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    text_pairs: Sequence[str] | None,
    max_length: int,
    batch_size: int,
    return_tensors: str,
) -> Batches:
    """Yield (original indices, padded batch) with similar lengths grouped together.

    Padding only to the longest member of each batch, and grouping by length, keeps the
    padded tokens (pure wasted compute) few; the indices let the caller restore input order.
    """
    lengths = [len(t) + (len(text_pairs[i]) if text_pairs else 0) for i, t in enumerate(texts)]
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        enc = tokenizer(
            [texts[i] for i in idx],
            [text_pairs[i] for i in idx] if text_pairs is not None else None,
            padding="longest",
            truncation=True,
            max_length=max_length,
            return_tensors=return_tensors,
        )
        yield idx, enc


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Torch's thread count is process-global: restore it so a benchmark setting does not leak."""
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _torch_logits(model_dir: Path, batches: Batches, threads: int | None) -> Parts:
    try:
        model = load_saved_classifier(model_dir)
    except OSError as exc:
        raise UserError(
            f"could not load a classifier from {model_dir} ({exc}) — pass a folder with "
            "config.json and model weights, or an .onnx file"
        ) from exc
    model.eval()
    out = []
    with _torch_threads(threads), torch.no_grad():
        for idx, enc in batches:
            out.append((idx, model(**enc).logits.float().numpy()))
    return out


def _onnx_logits(onnx_path: Path, batches: Batches, threads: int | None) -> Parts:
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(
        str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    wanted = [i.name for i in session.get_inputs()]
    out = []
    for idx, enc in batches:
        missing = [name for name in wanted if name not in enc]
        if missing:
            raise UserError(
                f"{onnx_path} expects inputs {missing} that the tokenizer does not produce — "
                "pass tokenizer_dir pointing to the tokenizer the model was exported with"
            )
        feed = {name: enc[name].astype(np.int64) for name in wanted}
        out.append((idx, session.run(None, feed)[0]))
    return out


def predict_logits(
    model_path: Path,
    texts: list[str],
    text_pairs: list[str] | None = None,
    *,
    max_length: int = 128,
    batch_size: int = 64,
    tokenizer_dir: Path | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """Logits (n, num_labels) in input order for an HF model folder or an .onnx / .ort file."""
    model_path = Path(model_path)
    is_onnx = model_path.suffix in (".onnx", ".ort") and model_path.is_file()
    if not is_onnx and not (model_path / "config.json").is_file():
        raise UserError(
            f"{model_path} is neither a model folder (with config.json) nor an .onnx file — "
            "pass one of those"
        )
    if not texts:
        raise UserError("no texts to score — pass at least one example")
    if text_pairs is not None and len(text_pairs) != len(texts):
        raise UserError(
            f"{len(texts)} texts but {len(text_pairs)} text_pairs — pass one pair per text"
        )
    tokenizer = load_tokenizer(tokenizer_dir or (model_path.parent if is_onnx else model_path))
    batches = _batches(
        tokenizer, texts, text_pairs, max_length, batch_size, "np" if is_onnx else "pt"
    )
    if is_onnx:
        parts = _onnx_logits(model_path, batches, threads)
    else:
        parts = _torch_logits(model_path, batches, threads)
    logits = np.empty((len(texts), parts[0][1].shape[1]), dtype=np.float32)
    for idx, batch_logits in parts:
        logits[idx] = batch_logits
    return logits


def accuracy(
    model_path: Path,
    texts: list[str],
    text_pairs: list[str] | None,
    labels: Sequence[int],
    **kwargs: Any,
) -> float:
    """Fraction (0..1) of examples whose argmax logit is the gold label."""
    if len(labels) != len(texts):
        raise UserError(f"{len(texts)} texts but {len(labels)} labels — pass one label per text")
    logits = predict_logits(model_path, texts, text_pairs, **kwargs)
    return float(np.mean(logits.argmax(axis=1) == np.asarray(labels)))
