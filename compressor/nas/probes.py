"""AdaBERT's task-useful knowledge of the teacher's layers: a probe classifier per layer
(a linear classifier on the layer's [CLS] state, trained on the task while the teacher stays
frozen), whose predictions the search network's cells learn layer by layer, weighted by how
well each probe does (attentive weights: softmax of minus its loss).

The teacher runs once over the search examples; the probes then train on its stored [CLS]
states, and the search reads only their logits, so the teacher is not in the search loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from compressor.data import Split
from compressor.errors import UserError
from compressor.progress import LoggedProgress, LogLine


@dataclass
class Probes:
    """Per example and teacher layer (1..M) the probe's logits (n, M, labels); per layer the
    probe's training loss and accuracy."""

    logits: torch.Tensor
    losses: list[float]
    accuracies: list[float]


@torch.no_grad()
def layer_states(
    teacher: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    split: Split,
    *,
    max_length: int,
    batch_size: int,
    progress: LoggedProgress,
) -> torch.Tensor:
    """The teacher's [CLS] state after each layer, (n, M, hidden), in the split's order."""
    if not len(split):
        raise UserError("no examples to search on — check data.max_train_examples")
    teacher.eval()
    order = sorted(range(len(split)), key=lambda k: len(split.texts[k]))
    out: torch.Tensor | None = None
    task = progress.add_task("teacher layers for the probes", total=len(split),
                             log=LogLine(items="examples"))  # fmt: skip
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        enc = tokenizer(
            [split.texts[k] for k in idx],
            None if split.pairs is None else [split.pairs[k] for k in idx],
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        ).to(teacher.device)
        hidden = teacher(**enc, output_hidden_states=True).hidden_states[1:]
        cls = torch.stack([h[:, 0] for h in hidden], 1).float().cpu()
        if out is None:
            out = torch.empty(len(split), *cls.shape[1:])
        out[idx] = cls
        progress.advance(task, len(idx))
    return out  # type: ignore[return-value]  # set by the first of >= 1 batches


def train_probes(
    states: torch.Tensor,
    labels: torch.Tensor,
    num_labels: int,
    *,
    epochs: int,
    batch_size: int = 256,
    seed: int = 0,
) -> Probes:
    """One linear probe per layer on the frozen states (Adam, cross-entropy), then each
    probe's logits, loss and accuracy on the same examples."""
    generator = torch.Generator().manual_seed(seed)
    n, layers, hidden = states.shape
    probes = nn.ModuleList(nn.Linear(hidden, num_labels) for _ in range(layers))
    optimizer = torch.optim.Adam(probes.parameters(), lr=1e-2)
    for _ in range(epochs):
        for batch in torch.randperm(n, generator=generator).split(batch_size):
            loss = sum(
                F.cross_entropy(probe(states[batch, m]), labels[batch])
                for m, probe in enumerate(probes)
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        logits = torch.stack([probe(states[:, m]) for m, probe in enumerate(probes)], 1)
    return Probes(
        logits=logits,
        losses=[F.cross_entropy(logits[:, m], labels).item() for m in range(layers)],
        accuracies=[(logits[:, m].argmax(-1) == labels).float().mean().item()
                    for m in range(layers)],
    )  # fmt: skip


def layer_map(cells: int, layers: int) -> list[int]:
    """The teacher layer (0-based) whose probe cell i learns: evenly spread, the last cell on
    the last layer (AdaBERT maps student layer i to teacher layer ceil(i * M / K))."""
    return [-(-(i + 1) * layers // cells) - 1 for i in range(cells)]


def attentive_weights(losses: list[float], mapping: list[int]) -> torch.Tensor:
    """The KD weight of each cell: softmax over the cells of minus their probe's loss, so
    layers whose knowledge predicts the task better count more."""
    return F.softmax(-torch.tensor([losses[m] for m in mapping]), 0)
