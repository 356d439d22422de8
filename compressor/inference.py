"""One inference path for every artifact (PyTorch folder or ONNX file).

Accuracy, parity and the report all score models through `predict_logits`, so a difference
between two artifacts can only come from the models, never from two tokenisation or batching
code paths drifting apart.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import numpy as np
import onnxruntime as ort
import torch
from transformers import BatchEncoding, PreTrainedTokenizerBase

from compressor.data import Split
from compressor.errors import UserError
from compressor.layout import package_root
from compressor.models import load_saved_classifier, load_tokenizer
from compressor.tasks import NO_PREDICTION, task_named
from compressor.tasks.token import first_pieces

#: sentences per batch when scoring or predicting a file: evaluation and `predict` share it,
#: so a file whose outputs depend on its batch scores the same in both
DEFAULT_BATCH = 64

Batches = Iterator[tuple[np.ndarray, BatchEncoding]]
Parts = Iterator[tuple[np.ndarray, np.ndarray, BatchEncoding | None]]
"""(input positions, their logits, their encoding: None for a file fed raw sentences)."""


def is_words(texts: Sequence[Any]) -> bool:
    """Whether the inputs are sentences split into words (token classification), which are
    scored a word at a time instead of a sentence at a time."""
    return bool(texts) and isinstance(texts[0], list | tuple)


def batch_indices(
    texts: Sequence[str], text_pairs: Sequence[str] | None, batch_size: int
) -> list[np.ndarray]:
    """Input positions in batches of similar length (by characters, stable).

    Grouping by length keeps the padded tokens (pure wasted compute) few; every caller that
    batches sentences takes its batches from here, so a file whose outputs depend on its batch
    (dynamic int8) sees the same batches in evaluation and in `predict`.
    """
    lengths = [len(t) + (len(text_pairs[i]) if text_pairs else 0) for i, t in enumerate(texts)]
    order = np.argsort(lengths, kind="stable")
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def _batches(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    text_pairs: Sequence[str] | None,
    max_length: int,
    batch_size: int,
    return_tensors: str,
) -> Batches:
    """Yield (original indices, batch padded to its longest member); the indices let the
    caller restore input order."""
    words = is_words(texts)
    for idx in batch_indices(texts, text_pairs, batch_size):
        enc = tokenizer(
            [list(texts[i]) if words else texts[i] for i in idx],
            [text_pairs[i] for i in idx] if text_pairs is not None else None,
            padding="longest",
            truncation=True,
            max_length=max_length,
            return_tensors=return_tensors,
            is_split_into_words=words,
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
    with _torch_threads(threads), torch.no_grad():
        for idx, enc in batches:
            yield idx, model(**enc).logits.float().numpy(), enc


def onnx_session(path: Path, threads: int | None = None) -> ort.InferenceSession:
    """A CPU session that also knows onnxruntime-extensions' operators, which end-to-end files
    (the tokenizer inside the graph) use. The last few are kept, keyed by the file's mtime, so
    a `Predictor` answering one call after another loads its file once."""
    stat = Path(path).stat()
    return _cached_session(str(path), stat.st_mtime_ns, stat.st_size, threads)


@lru_cache(maxsize=4)
def _cached_session(
    path: str, _mtime_ns: int, _size: int, threads: int | None
) -> ort.InferenceSession:
    from onnxruntime_extensions import get_library_path

    options = ort.SessionOptions()
    options.register_custom_ops_library(get_library_path())
    if threads is not None:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def takes_text(session: ort.InferenceSession) -> bool:
    """An end-to-end file: one input of raw strings instead of token ids."""
    inputs = session.get_inputs()
    return len(inputs) == 1 and inputs[0].type == "tensor(string)"


def _text_logits(session: ort.InferenceSession, texts: Sequence[str],
                 batches: list[np.ndarray]) -> Parts:  # fmt: skip
    names = [o.name for o in session.get_outputs()]
    wanted = ["logits"] if "logits" in names else names[:1]
    feed = session.get_inputs()[0].name
    for idx in batches:
        sentences = np.array([texts[i] for i in idx], dtype=object)
        yield idx, session.run(wanted, {feed: sentences})[0], None


def _onnx_logits(session: ort.InferenceSession, onnx_path: Path, batches: Batches) -> Parts:
    wanted = [i.name for i in session.get_inputs()]
    for idx, enc in batches:
        missing = [name for name in wanted if name not in enc]
        if missing:
            raise UserError(
                f"{onnx_path} expects inputs {missing} that the tokenizer does not produce — "
                "pass tokenizer_dir pointing to the tokenizer the model was exported with"
            )
        feed = {name: enc[name].astype(np.int64) for name in wanted}
        yield idx, session.run(None, feed)[0], enc


def _parts(
    model_path: Path,
    texts: Sequence[Any],
    text_pairs: Sequence[str] | None,
    *,
    max_length: int,
    batch_size: int,
    tokenizer_dir: Path | None,
    threads: int | None,
) -> Parts:
    """The batches' logits of any artifact, after the checks every caller needs."""
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
    session = onnx_session(model_path, threads) if is_onnx else None
    if session is not None and takes_text(session):
        if text_pairs is not None:
            raise UserError(f"{model_path} takes one sentence per row, not sentence pairs")
        return _text_logits(session, texts, batch_indices(texts, None, batch_size))
    tokenizer = load_tokenizer(
        tokenizer_dir or (package_root(model_path) if is_onnx else model_path)
    )
    batches = _batches(
        tokenizer, texts, text_pairs, max_length, batch_size, "np" if is_onnx else "pt"
    )
    if session is not None:
        return _onnx_logits(session, model_path, batches)
    return _torch_logits(model_path, batches, threads)


def predict_logits(
    model_path: Path,
    texts: list[str],
    text_pairs: list[str] | None = None,
    *,
    max_length: int = 128,
    batch_size: int = DEFAULT_BATCH,
    tokenizer_dir: Path | None = None,
    threads: int | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Logits (n, num_labels) in input order for an HF model folder or an .onnx / .ort file
    (an end-to-end file is fed the raw sentences, in the same batches); for sentences split
    into words, one row per word over all sentences in order (`_per_word`). `on_batch(n)`
    hears of each batch of n sentences done."""
    parts = _parts(model_path, texts, text_pairs, max_length=max_length, batch_size=batch_size,
                   tokenizer_dir=tokenizer_dir, threads=threads)  # fmt: skip
    if is_words(texts):
        return _per_word(parts, texts, on_batch)
    logits: np.ndarray | None = None
    for idx, batch_logits, _enc in parts:
        if logits is None:
            logits = np.empty((len(texts), batch_logits.shape[1]), dtype=np.float32)
        logits[idx] = batch_logits
        if on_batch is not None:
            on_batch(len(idx))
    return cast(np.ndarray, logits)  # texts is not empty: one batch at least


@dataclass(frozen=True)
class PieceLogits:
    """One raw text's pieces as a token classifier sees them: the logits of each real piece
    (no padding), its character span in the text, and the word it belongs to (None for
    special tokens)."""

    logits: np.ndarray
    offsets: list[tuple[int, int]]
    word_ids: list[int | None]


def predict_piece_logits(
    model_path: Path,
    texts: list[str],
    *,
    max_length: int = 128,
    batch_size: int = DEFAULT_BATCH,
    tokenizer_dir: Path | None = None,
    threads: int | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> list[PieceLogits]:
    """A token classifier's logits on raw texts, piece by piece with where each piece lies in
    its text, in input order: what entity spans are built from. The fast tokenizer splits
    words as evaluation's word lists were split (whitespace and punctuation)."""
    parts = _parts(model_path, texts, None, max_length=max_length, batch_size=batch_size,
                   tokenizer_dir=tokenizer_dir, threads=threads)  # fmt: skip
    found: list[PieceLogits | None] = [None] * len(texts)
    for idx, batch_logits, enc in parts:
        if enc is None or batch_logits.ndim != 3:
            raise UserError(f"{model_path} gives one label per text, not one per word")
        for row, i in enumerate(idx):
            real = int(np.asarray(enc["attention_mask"][row]).sum())
            found[i] = PieceLogits(
                np.asarray(batch_logits[row, :real]),
                [tuple(span) for span in enc.encodings[row].offsets[:real]],
                enc.word_ids(row)[:real],
            )
        if on_batch is not None:
            on_batch(len(idx))
    return cast(list[PieceLogits], found)


def _per_word(parts: Parts, words: Sequence[Sequence[str]],
              on_batch: Callable[[int], None] | None) -> np.ndarray:  # fmt: skip
    """The logits of each word's first piece, all sentences' words in order; a word cut off
    by `max_length` gets a row of NaN (it has no prediction)."""
    offsets = np.cumsum([0, *(len(sentence) for sentence in words)])
    logits: np.ndarray | None = None
    for idx, batch_logits, enc in parts:
        if enc is None:
            raise UserError("an end-to-end file takes whole sentences, not words to tag")
        if logits is None:
            logits = np.full((offsets[-1], batch_logits.shape[-1]), np.nan, dtype=np.float32)
        for row, i in enumerate(idx):
            words, first = first_pieces(enc.word_ids(row))
            logits[offsets[i] + words] = batch_logits[row, first]
        if on_batch is not None:
            on_batch(len(idx))
    return cast(np.ndarray, logits)


def predictions(logits: np.ndarray) -> np.ndarray:
    """Class ids from logits; a row of NaN (a word the model never saw) is `NO_PREDICTION`."""
    unseen = np.isnan(logits).any(axis=1)
    return np.where(unseen, NO_PREDICTION, np.nan_to_num(logits, nan=0.0).argmax(axis=1))


def label_names(model_path: Path) -> list[str]:
    """The class names in the config of a model folder, or of the package an ONNX file lies
    in (config and tokenizer at its root); none when the config names no classes, which
    only the callers that show names refuse."""
    model_path = Path(model_path)
    config = (package_root(model_path) if model_path.is_file() else model_path) / "config.json"
    if not config.is_file():
        raise UserError(
            f"no config.json beside {model_path} — keep the file in its package (config and "
            "tokenizer at the root, the graph under onnx/)"
        )
    id2label = json.loads(config.read_text(encoding="utf-8")).get("id2label") or {}
    return [id2label[key] for key in sorted(id2label, key=int)]


def other_figures(scores: dict[str, Any]) -> dict[str, Any]:
    """A task's figures besides its main one (`dev_scores`' "score", which every
    `dev_accuracy` key holds): what the manifest and the run record as `dev_figures`."""
    return {k: v for k, v in scores.items() if k not in ("score", "metric", "accuracy")}


def dev_scores(model_path: Path, split: Split, **kwargs: Any) -> dict[str, Any]:
    """The metric of the split's task on an artifact: "score" is the main figure, "metric"
    names it, beside the task's other figures (precision, recall, F1 per entity type)."""
    task = task_named(split.task)
    logits = predict_logits(model_path, split.texts, split.pairs, **kwargs)
    figures = task.score(predictions(logits), split.labels, label_names(model_path))
    return {"metric": task.metric, **figures}


def accuracy(
    model_path: Path,
    texts: list[str],
    text_pairs: list[str] | None,
    labels: Sequence[int],
    **kwargs: Any,
) -> float:
    """Fraction (0..1) of examples (of words, for tagged words) whose argmax logit is the
    gold label."""
    if len(labels) != len(texts):
        raise UserError(f"{len(texts)} texts but {len(labels)} labels — pass one label per text")
    logits = predict_logits(model_path, texts, text_pairs, **kwargs)
    if is_words(texts):
        labels = [tag for tags in labels for tag in tags]
    return float(np.mean(predictions(logits) == np.asarray(labels)))
