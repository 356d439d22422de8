"""One HomoDistil run: prune a copy of a model while distilling into it, then cut the
masked units out and check that the cut model computes what the masked one did."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoModelForMaskedLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from compressor.data import Split
from compressor.distill.losses import soft_kd
from compressor.distill.objective import DistillObjective
from compressor.distill.trainer import TrainState, total_steps, train
from compressor.models import load_saved_classifier
from compressor.prune.pruner import Pruner
from compressor.prune.shrink import shrink
from compressor.prune.units import layout_of
from compressor.recipe import Recipe
from compressor.students import accepted_inputs

# Masked and cut models differ only by float summation order; a larger gap is a bug.
SHRINK_TOLERANCE = 1e-3
MAX_TRACE_POINTS = 400
PROBE_SENTENCES = 64
# A masked LM's probe logits span the vocabulary at every token: fewer sentences.
PROBE_SENTENCES_MLM = 16


@dataclass
class PruneOutcome:
    model: PreTrainedModel
    state: TrainState
    pruner: Pruner
    shrink_max_abs_diff: float


@torch.no_grad()
def _logits(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    model.eval()
    accepted = accepted_inputs(model)
    return model(**{k: v for k, v in batch.items() if k in accepted}).logits


def gap_probe(
    teacher: PreTrainedModel, student: PreTrainedModel, batch: dict[str, torch.Tensor]
) -> Callable[[], float]:
    """KL(teacher || student) at T = 1 on fixed sentences, both models in eval mode: the
    prediction gap HomoDistil keeps small, free of the dropout noise of training batches."""
    real = batch["attention_mask"].bool()

    def tokens(logits: torch.Tensor) -> torch.Tensor:
        """A masked LM predicts at every real token; a classifier once per sentence."""
        return logits[real.to(logits.device)] if logits.dim() == 3 else logits

    teacher_logits = tokens(_logits(teacher, batch))

    def measure() -> float:
        device = next(student.parameters()).device
        training = student.training
        logits = tokens(_logits(student, {k: v.to(device) for k, v in batch.items()}))
        student.train(training)
        return soft_kd(logits, teacher_logits.to(device), 1.0).item()

    return measure


def prune_while_distilling(
    teacher: PreTrainedModel,
    student: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    train_split: Split,
    dev_split: Split,
    recipe: Recipe,
    out_dir: Path,
    *,
    resume: bool,
) -> PruneOutcome:
    """Distil `teacher` into `student` (the copy being pruned) under the recipe's pruning
    schedule; return the physically smaller model kept at or after the final pruning step.

    The kept checkpoint is a full-size model saved with its masks' zeros still in place;
    the final masks are re-applied to it, the logits of some dev sentences are recorded,
    the units are cut out and the same sentences must give the same logits.
    """
    distill_cfg, train_cfg = recipe.prune_plan()
    mlm = recipe.prune.objective == "mlm"
    layout = layout_of(student)
    sample = dev_split.take(PROBE_SENTENCES_MLM if mlm else PROBE_SENTENCES)
    batch = tokenizer(
        sample.sentences,
        sample.pairs,
        truncation=True,
        max_length=recipe.data.max_length,
        padding=True,
        return_tensors="pt",
    )
    probe = gap_probe(teacher, student, batch)
    pruner = Pruner(layout, recipe.prune, total_steps(train_cfg, len(train_split)), probe)
    pruner.trace.append({"step": 0, "remaining": 1.0, "probe_kl": probe()})
    objective = DistillObjective(teacher, student, distill_cfg)
    with pruner.masks.applied(layout):
        state = train(
            student,
            tokenizer,
            train_split,
            dev_split,
            train_cfg,
            max_length=recipe.data.max_length,
            out_dir=out_dir,
            compute_loss=objective,
            extra_modules=objective.modules,
            frozen_modules=objective.frozen,
            resume=resume,
            description="pruning while distilling",
            hooks=pruner,
            keep_from_step=pruner.end,
            mlm_probability=recipe.prune.mlm_probability if mlm else None,
        )
    kept = (
        AutoModelForMaskedLM.from_pretrained(out_dir / "best")
        if mlm
        else (load_saved_classifier(out_dir / "best"))
    )
    kept_layout = layout_of(kept)
    with pruner.masks.applied(kept_layout):
        masked = _logits(kept, batch)
    shrink(kept, kept_layout, pruner.masks)
    diff = float((_logits(kept, batch) - masked).abs().max())
    if diff > SHRINK_TOLERANCE:
        raise RuntimeError(f"the cut model's logits differ from the masked model's by {diff}")
    return PruneOutcome(kept, state, pruner, diff)


def thin_trace(trace: list[dict], keep: int = MAX_TRACE_POINTS) -> list[dict]:
    """The per-step trace, or only its probed steps (and the last) when it is longer than
    `keep`: the probes are what the report plots."""
    if len(trace) <= keep:
        return trace
    return [t for t in trace[:-1] if "probe_kl" in t] + [trace[-1]]
