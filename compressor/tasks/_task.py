"""The seam every task fills: what its head is, how its examples become model inputs and
loss targets, and the metric its report leads with. The trainer, inference, export and the
report ask the task of their data or model for these, so a new task (extractive question
answering) is one module in this package."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
from transformers import PreTrainedTokenizerBase

IGNORED = -100
"""The label of a position that no loss and no metric reads (padding, special tokens, the
second piece of a word): PyTorch's cross-entropy skips it by default."""

NO_PREDICTION = -1
"""The prediction of an item the model never saw (a word cut off by `max_length`)."""


class Task(Protocol):
    """One task, registered in `TASKS` under `name`."""

    name: str
    metric: str
    """The name of the main figure (`score`'s "score"), as the report writes it."""
    short_metric: str
    """The same in progress lines ("acc", "F1")."""
    auto_class: type
    """transformers' Auto class for this head."""
    head_suffix: str
    """How the class names of its transformers models end (`ForTokenClassification`): a
    config whose `architectures` ends so is of this task; optimum's ORT class is `ORTModel`
    and this suffix."""
    pipeline_tag: str
    """The Hugging Face pipeline (and hub tag) that runs it, which is also the task name
    optimum's ONNX exporter knows for this head."""
    title: str
    """What a model card calls a model of this task ("text classifier")."""

    def features(
        self,
        texts: Sequence[Any],
        pairs: Sequence[str] | None,
        labels: Sequence[Any] | None,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int,
    ) -> list[dict]:
        """One unpadded input dict per example, with its loss targets under "labels" when
        `labels` is given."""

    def collator(self, tokenizer: PreTrainedTokenizerBase) -> Callable[[list[dict]], dict]:
        """Pads a list of `features` into a batch (labels included)."""

    def score(
        self, predictions: np.ndarray, labels: Sequence[Any], label_names: Sequence[str]
    ) -> dict[str, Any]:
        """The metric on class ids in input order (one per example, or one per word over all
        examples in order): "score" is the main figure (0..1), beside the task's others."""

    def as_labels(self, predictions: np.ndarray, like: Sequence[Any]) -> Sequence[Any]:
        """`predictions` in the shape of the labels `like` (per word: one list a sentence),
        so one model's output can be scored as the gold of another's; `NO_PREDICTION` stays
        and `score` reads it as it does in predictions."""
