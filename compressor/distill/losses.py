"""Distillation losses, each a small module registered by name for the recipe.

Prediction-layer terms (`soft_kd`, `hard_ce`) read logits; intermediate terms read the
`hidden_states` tuples that HF models return with `output_hidden_states=True`, so neither
model is edited.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

INTERMEDIATE_LOSSES: dict[str, type[IntermediateLossModule]] = {}


def register(cls: type[IntermediateLossModule]) -> type[IntermediateLossModule]:
    """Make a loss selectable by its `name` in the recipe's `distill.intermediate` list."""
    INTERMEDIATE_LOSSES[cls.name] = cls
    return cls


def soft_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float):
    """Hinton et al. (2015), eq. 2: KL(p_T || p_S) at temperature T, times T^2.

    The T^2 factor keeps the gradient scale of the soft term independent of T, so that
    `alpha` means the same thing at every temperature.
    """
    log_p_s = F.log_softmax(student_logits / temperature, dim=-1)
    log_p_t = F.log_softmax(teacher_logits / temperature, dim=-1)
    return F.kl_div(log_p_s, log_p_t, log_target=True, reduction="batchmean") * temperature**2


def hard_ce(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with the gold labels: the hard half of Hinton's mix."""
    return F.cross_entropy(student_logits, labels)


class IntermediateLossModule(nn.Module):
    """An intermediate-layer term over pairs of (student, teacher) hidden-state indices."""

    name: ClassVar[str]

    def __init__(self, pairs: list[tuple[int, int]], student_dim: int, teacher_dim: int):
        super().__init__()
        self.pairs = pairs
        self.student_dim = student_dim
        self.teacher_dim = teacher_dim

    def forward(
        self,
        student_hidden: tuple[torch.Tensor, ...],
        teacher_hidden: tuple[torch.Tensor, ...],
        attention_mask: torch.Tensor,
    ) -> torch.Tensor:
        raise NotImplementedError


@register
class HiddenMSE(IntermediateLossModule):
    """TinyBERT (Jiao et al., 2020), eq. 8: MSE(H_S W_h, H_T) per mapped layer, summed.

    W_h is a learned projection used only when widths differ; it trains with the student
    and is dropped at the end. Padding positions are excluded from the mean (the paper
    does not say; averaging over pads would reward matching pad vectors).
    """

    name = "hidden_mse"

    def __init__(self, pairs: list[tuple[int, int]], student_dim: int, teacher_dim: int):
        super().__init__(pairs, student_dim, teacher_dim)
        self.proj: nn.Module = (
            nn.Identity() if student_dim == teacher_dim else nn.Linear(student_dim, teacher_dim)
        )

    def forward(self, student_hidden, teacher_hidden, attention_mask):
        mask = attention_mask.unsqueeze(-1).to(student_hidden[0].dtype)
        denom = mask.sum() * self.teacher_dim
        total = student_hidden[0].new_zeros(())
        for s_idx, t_idx in self.pairs:
            diff = self.proj(student_hidden[s_idx]) - teacher_hidden[t_idx]
            total = total + (diff.pow(2) * mask).sum() / denom
        return total
