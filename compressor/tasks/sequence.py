"""`sequence-classification`: one label per text or text pair (sentiment, NLI). The task
compressor began with; its behaviour here is what it always was."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from transformers import (
    AutoModelForSequenceClassification,
    DataCollatorWithPadding,
    PreTrainedTokenizerBase,
)

from compressor.registry import TASKS


class SequenceClassification:
    name = "sequence-classification"
    metric = "accuracy"
    short_metric = "acc"
    pipeline_tag = "text-classification"
    title = "text classifier"
    auto_class = AutoModelForSequenceClassification
    head_suffix = "ForSequenceClassification"

    def features(
        self,
        texts: Sequence[Any],
        pairs: Sequence[str] | None,
        labels: Sequence[Any] | None,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int,
    ) -> list[dict]:
        enc = tokenizer(list(texts), pairs, truncation=True, max_length=max_length)
        keys = list(enc.keys())
        return [
            {**{k: enc[k][i] for k in keys}, **({"labels": labels[i]} if labels else {})}
            for i in range(len(texts))
        ]

    def collator(self, tokenizer: PreTrainedTokenizerBase) -> Callable[[list[dict]], dict]:
        return DataCollatorWithPadding(tokenizer)

    def score(
        self, predictions: np.ndarray, labels: Sequence[Any], label_names: Sequence[str]
    ) -> dict[str, Any]:
        accuracy = float(np.mean(np.asarray(predictions) == np.asarray(labels)))
        return {"score": accuracy, "accuracy": accuracy}

    def as_labels(self, predictions: np.ndarray, like: Sequence[Any]) -> Sequence[Any]:
        return predictions


SEQUENCE = TASKS.register(SequenceClassification.name)(SequenceClassification())
