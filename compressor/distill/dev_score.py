"""The dev figure the trainer keeps its best model by: the task's main metric, computed from
the model's predictions on the dev loader in the trainer's own process group."""

from __future__ import annotations

import numpy as np
import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from compressor.students import accepted_inputs
from compressor.tasks import IGNORED, Task
from compressor.tasks.token import split_by_lengths


@torch.no_grad()
def dev_score(
    model: torch.nn.Module, loader: DataLoader, accelerator: Accelerator, task: Task | None
) -> float:
    """The task's main figure on the dev loader (accuracy; entity F1 for tags), or with no
    task (masked LM) the accuracy on the masked tokens. Predictions per token are read at
    the labelled positions only, padded alike on every rank before they are gathered."""
    model.eval()
    accepted = accepted_inputs(model)
    predictions: list[int] = []
    gold: list = []
    for batch in loader:
        labels = batch.pop("labels")
        preds = model(**{k: v for k, v in batch.items() if k in accepted}).logits.argmax(-1)
        if preds.dim() == 2:
            preds = accelerator.pad_across_processes(preds, dim=1, pad_index=IGNORED)
            labels = accelerator.pad_across_processes(labels, dim=1, pad_index=IGNORED)
        preds, labels = accelerator.gather_for_metrics((preds, labels))
        if preds.dim() == 1:
            predictions += preds.tolist()
            gold += labels.tolist()
            continue
        kept = labels != IGNORED
        predictions += preds[kept].tolist()
        gold += split_by_lengths(labels[kept].tolist(), kept.sum(-1).tolist())
    model.train()
    if task is None:
        flat = [label for row in gold for label in row]
        return sum(p == g for p, g in zip(predictions, flat, strict=True)) / max(len(flat), 1)
    config = accelerator.unwrap_model(model).config
    names = [config.id2label[i] for i in range(len(config.id2label))]
    return float(task.score(np.asarray(predictions), gold, names)["score"])
