"""The examples of one split, and the task data a run reads: shared by the readers of
texts with labels (`compressor.data`) and of tagged words (`compressor.data.tagged`)."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from compressor.errors import UserError
from compressor.tasks import DEFAULT_TASK

DEV_NAMES = ("dev", "validation", "valid", "val")
"""The names a dev file or a hub data set's dev split goes by, first found first."""


@dataclass
class Split:
    """Columns of one split, already checked; `pairs` is None for single-sentence tasks. For
    token classification each text is a list of words and each label a list of tag ids, one
    per word (`task` says which)."""

    texts: list
    labels: list
    pairs: list[str] | None = None
    task: str = DEFAULT_TASK

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, n: int) -> Split:
        return self.select(range(min(n, len(self))))

    def select(self, idx: Iterable[int]) -> Split:
        """The examples at `idx`, in that order."""
        idx = list(idx)
        pairs = None if self.pairs is None else [self.pairs[i] for i in idx]
        return Split([self.texts[i] for i in idx], [self.labels[i] for i in idx], pairs,
                     self.task)  # fmt: skip

    @property
    def sentences(self) -> list[str]:
        """Each example as one string: the words of a tagged sentence joined by spaces
        (for lengths, tokenizer checks and anything that shows text)."""
        if self.task == DEFAULT_TASK:
            return self.texts
        return [" ".join(words) for words in self.texts]


@dataclass
class TaskData:
    """Both splits plus what the model needs to know about the label set."""

    train: Split
    dev: Split
    label_names: list[str]
    source: str
    notes: list[str] = field(default_factory=list)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def task(self) -> str:
        return self.train.task

    def use_label_order(self, names: list[str]) -> None:
        """Renumber tags by a teacher's class order (every tag is among `names`): a teacher
        trained elsewhere may number the same tags otherwise than the sorted order here."""
        index = {name: i for i, name in enumerate(names)}
        for split in (self.train, self.dev):
            split.labels = [[index[self.label_names[t]] for t in tags] for tags in split.labels]
        self.label_names = list(names)


def hold_out(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """A seeded share of `split` as dev, for data that comes without a dev file."""
    order = list(range(len(split)))
    random.Random(seed).shuffle(order)
    n_dev = max(1, int(len(order) * fraction))
    if len(order) - n_dev < 1:
        raise UserError("too few examples to hold out a dev set — add data or a dev file")
    return split.select(order[n_dev:]), split.select(order[:n_dev])
