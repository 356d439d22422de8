"""`token-classification`: one tag per word (named entities, PII, parts of speech).

An example is a list of words with one tag id per word. Words are split into pieces by the
tokenizer; the first piece of a word carries its tag and the others are ignored by the loss
and the metric (`IGNORED`), as in BERT's NER set-up (Devlin et al. 2019, section 5.3) and
Hugging Face's token-classification example. The metric is seqeval's entity-level micro F1
in strict IOB2 mode: an entity counts only when its type and both boundaries are right, and
a predicted span that does not start with B- is no entity.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import (
    AutoModelForTokenClassification,
    DataCollatorForTokenClassification,
    PreTrainedTokenizerBase,
)

from compressor.registry import TASKS
from compressor.tasks._task import IGNORED, NO_PREDICTION

OUTSIDE = "O"


def first_pieces(word_ids: Sequence[int | None]) -> tuple[np.ndarray, np.ndarray]:
    """(word, position) of each word's first piece in one encoded sentence: the piece that
    carries the word's tag."""
    ids = np.array([-1 if w is None else w for w in word_ids], dtype=np.int64)
    first = (ids >= 0) & (ids != np.concatenate([[-1], ids[:-1]]))
    return ids[first], np.flatnonzero(first)


def aligned_labels(word_ids: Sequence[int | None], tags: Sequence[int]) -> list[int]:
    """One label per piece: the tag of its word on a word's first piece, `IGNORED` on the
    others and on special tokens."""
    words, first = first_pieces(word_ids)
    labels = np.full(len(word_ids), IGNORED, dtype=np.int64)
    labels[first] = np.asarray(tags, dtype=np.int64)[words]
    return labels.tolist()


@dataclass(frozen=True)
class Entity:
    """One entity found in a text: its type, its text, where it lies (`text[start:end]` is
    `word`) and the mean probability of its words' tags."""

    type: str
    word: str
    start: int
    end: int
    score: float


def entities(
    text: str,
    probabilities: np.ndarray,
    offsets: Sequence[tuple[int, int]],
    word_ids: Sequence[int | None],
    label_names: Sequence[str],
) -> list[Entity]:
    """The entities of one text from its pieces' tag probabilities. A word takes the tag of
    its first piece (the only piece training labels) and spans all its pieces' characters;
    consecutive tagged words of one type form an entity, a B- or a change of type starting
    a new one, as the Hugging Face pipeline's "simple" aggregation groups them."""
    words: list[tuple[str, float, int, int]] = []  # (tag, probability, start, end)
    previous = None
    for k, word in enumerate(word_ids):
        if word is None:
            continue
        if word == previous:
            tag, p, start, _end = words[-1]
            words[-1] = (tag, p, start, offsets[k][1])
            continue
        best = int(np.argmax(probabilities[k]))
        words.append((label_names[best], float(probabilities[k][best]), *offsets[k]))
        previous = word
    found: list[Entity] = []
    group: list[tuple[str, float, int, int]] = []

    def close() -> None:
        if group:
            start, end = group[0][2], group[-1][3]
            score = float(np.mean([p for _tag, p, _s, _e in group]))
            found.append(Entity(group[0][0][2:], text[start:end], start, end, score))
            group.clear()

    for tag, p, start, end in words:
        if tag == OUTSIDE:
            close()
            continue
        if not (tag.startswith("I-") and group and group[0][0][2:] == tag[2:]):
            close()
        group.append((tag, p, start, end))
    close()
    return found


class WordRowsCollator:
    """Pads a batch of tagged sentences (labels with `IGNORED`); a field that holds one row
    per word kept (the teacher's cached logits) is stacked over the batch's sentences in
    order, which is the order of the labelled positions the loss reads."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.inner = DataCollatorForTokenClassification(tokenizer, label_pad_token_id=IGNORED)

    def __call__(self, features: list[dict]) -> dict:
        rows = [key for key, value in features[0].items() if _is_rows(value)]
        stacked = {
            key: torch.tensor([row for f in features for row in f[key]], dtype=torch.float32)
            for key in rows
        }
        batch = self.inner([{k: v for k, v in f.items() if k not in rows} for f in features])
        batch.update(stacked)
        return batch


def _is_rows(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], list)


def split_by_lengths(flat: Sequence[Any], lengths: Sequence[int]) -> list[list[Any]]:
    """`flat` cut into consecutive runs of `lengths`: per-word values back per sentence."""
    if sum(lengths) != len(flat):
        raise ValueError(f"{len(flat)} values for {sum(lengths)} words")
    bounds = np.cumsum([0, *lengths])
    return [list(flat[a:b]) for a, b in itertools.pairwise(bounds)]


class TokenClassification:
    name = "token-classification"
    metric = "entity F1"
    short_metric = "F1"
    pipeline_tag = "token-classification"
    title = "word tagger"
    auto_class = AutoModelForTokenClassification
    head_suffix = "ForTokenClassification"

    def features(
        self,
        texts: Sequence[Any],
        pairs: Sequence[str] | None,
        labels: Sequence[Any] | None,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int,
    ) -> list[dict]:
        if pairs is not None:
            raise ValueError("token classification reads one word sequence per example")
        enc = tokenizer(
            [list(words) for words in texts],
            is_split_into_words=True,
            truncation=True,
            max_length=max_length,
        )
        keys = list(enc.keys())
        features = []
        for i in range(len(texts)):
            feature = {k: enc[k][i] for k in keys}
            if labels:
                feature["labels"] = aligned_labels(enc.word_ids(i), labels[i])
            features.append(feature)
        return features

    def collator(self, tokenizer: PreTrainedTokenizerBase) -> Callable[[list[dict]], dict]:
        return WordRowsCollator(tokenizer)

    def score(
        self, predictions: np.ndarray, labels: Sequence[Any], label_names: Sequence[str]
    ) -> dict[str, Any]:
        """seqeval's strict IOB2 figures over sentences; a word the model never saw
        (`NO_PREDICTION`) is predicted outside any entity, so it costs recall (and is
        outside any entity in gold labels that are another model's predictions)."""
        from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
        from seqeval.scheme import IOB2

        names = [*label_names]
        lengths = [len(tags) for tags in labels]
        flat_pred = [OUTSIDE if p == NO_PREDICTION else names[p] for p in np.asarray(predictions)]
        gold = [[OUTSIDE if t == NO_PREDICTION else names[t] for t in tags] for tags in labels]
        pred = split_by_lengths(flat_pred, lengths)
        strict = {"mode": "strict", "scheme": IOB2, "zero_division": 0}
        per_type = classification_report(gold, pred, output_dict=True, **strict)
        f1 = float(f1_score(gold, pred, **strict))
        flat_gold = [tag for tags in gold for tag in tags]
        return {
            "score": f1,
            "entity_f1": f1,
            "precision": float(precision_score(gold, pred, **strict)),
            "recall": float(recall_score(gold, pred, **strict)),
            "token_accuracy": float(
                np.mean([g == p for g, p in zip(flat_gold, flat_pred, strict=True)])
            ),
            "f1_per_type": {
                kind: round(float(row["f1-score"]), 6)
                for kind, row in per_type.items()
                if not kind.endswith(" avg")
            },
        }

    def as_labels(self, predictions: np.ndarray, like: Sequence[Any]) -> Sequence[Any]:
        return split_by_lengths(list(np.asarray(predictions)), [len(tags) for tags in like])


TOKEN = TASKS.register(TokenClassification.name)(TokenClassification())
