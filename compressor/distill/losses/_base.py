"""What every distillation loss shares: the view of a model's forward pass a loss reads,
the prediction-layer terms (`soft_kd`, `hard_ce`) and the base class of the registered
intermediate terms, one module each in this package."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from compressor.distill.mapping import LayerMap
from compressor.registry import LOSSES
from compressor.students import Features

# What a loss may read of one model's forward pass is what its student kind's adaptor returns.
ModelView = Features


def register(cls: type[IntermediateLossModule]) -> type[IntermediateLossModule]:
    """Make a loss selectable by its `name` in the recipe's `distill.intermediate` list."""
    return LOSSES.register(cls.name)(cls)


def soft_kd(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor | list[torch.Tensor],
    temperature: float | torch.Tensor,
    teacher_weights: list[float] | None = None,
) -> torch.Tensor:
    """Hinton et al. (2015), eq. 2: KL(p_T || p_S) at temperature T, times T^2.

    The T^2 factor keeps the gradient scale of the soft term independent of T, so that
    `alpha` means the same thing at every temperature. Several teachers give one target,
    the weighted mean of their temperature-T probabilities (Hinton et al.'s ensemble
    targets). A per-example temperature (shape (batch,)) scales each example by its own T^2.
    """
    logits = teacher_logits if isinstance(teacher_logits, list) else [teacher_logits]
    weights = torch.tensor(teacher_weights or [1.0] * len(logits), dtype=student_logits.dtype)
    weights = (weights / weights.sum()).to(student_logits.device)
    t = temperature[:, None] if isinstance(temperature, torch.Tensor) else temperature
    log_p_s = F.log_softmax(student_logits / t, dim=-1)
    log_p_t = torch.logsumexp(
        torch.stack([F.log_softmax(z / t, dim=-1) for z in logits]) + weights.log()[:, None, None],
        dim=0,
    )
    kl = F.kl_div(log_p_s, log_p_t, log_target=True, reduction="none").sum(-1)
    return (kl * (t.squeeze(-1) if isinstance(t, torch.Tensor) else t) ** 2).mean()


def hard_ce(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with the gold labels: the hard half of Hinton's mix."""
    return F.cross_entropy(student_logits, labels)


class IntermediateLossModule(nn.Module):
    """A term over pairs of (student, teacher) layer indices (0 = embeddings).

    `needs_hidden_states` asks both models for their hidden states, `needs_attentions` for
    `output_attentions`, `needs_qkv` hooks their Q/K/V projections (`capture.py`). Terms read
    a `ModelView` of each model. `default_map` is the layer map of the
    term's paper, used when the recipe names none, so a bare `{name: attention_kl}` is
    MiniLM's method rather than a uniform variant of it.
    """

    name: ClassVar[str]
    default_map: ClassVar[LayerMap] = "uniform"
    needs_hidden_states: ClassVar[bool] = True
    needs_attentions: ClassVar[bool] = False
    needs_qkv: ClassVar[bool] = False
    uses_embeddings: ClassVar[bool] = True

    def __init__(self, pairs: list[tuple[int, int]], student_dim: int, teacher_dim: int):
        super().__init__()
        self.pairs = pairs if self.uses_embeddings else [(s, t) for s, t in pairs if s and t]
        self.student_dim = student_dim
        self.teacher_dim = teacher_dim

    def forward(
        self, student: ModelView, teacher: ModelView, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        raise NotImplementedError


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens of a (batch, seq) tensor: pads must not be learned from."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1)


def projection(student_dim: int, teacher_dim: int) -> nn.Module:
    return nn.Identity() if student_dim == teacher_dim else nn.Linear(student_dim, teacher_dim)
