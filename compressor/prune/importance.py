"""Importance criteria: how a unit's per-step sensitivity becomes the score it is ranked by.

Each criterion is one small class registered by name and chosen by `prune.criterion`.
The raw sensitivity of a unit is sum |theta * dL/dtheta| over its weights (the first-order
estimate of the loss change when the unit is removed; HomoDistil sec. 3.2, after Molchanov
et al. 2019). A single batch's estimate is noisy, so criteria smooth it over steps.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from compressor.registry import IMPORTANCE


def register(cls: type[Criterion]) -> type[Criterion]:
    return IMPORTANCE.register(cls.name)(cls)


class Criterion:
    """Keeps smoothed statistics per unit kind ('heads', 'ffn', 'hidden')."""

    name: ClassVar[str]

    def __init__(self, beta1: float, beta2: float):
        self.beta1, self.beta2 = beta1, beta2
        self.stats: dict[str, dict[str, torch.Tensor]] = {}

    def update(self, kind: str, sensitivity: torch.Tensor) -> None:
        raise NotImplementedError

    def score(self, kind: str) -> torch.Tensor:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {kind: {k: v.clone() for k, v in s.items()} for kind, s in self.stats.items()}

    def load_state_dict(self, state: dict) -> None:
        self.stats = {kind: dict(s) for kind, s in state.items()}


@register
class Sensitivity(Criterion):
    """EMA of the sensitivity, I_bar(t) = b1 I_bar(t-1) + (1 - b1) I(t): HomoDistil's score."""

    name = "sensitivity"

    def update(self, kind: str, sensitivity: torch.Tensor) -> None:
        stats = self.stats.setdefault(kind, {"ema": sensitivity.clone()})
        stats["ema"] = self.beta1 * stats["ema"] + (1 - self.beta1) * sensitivity

    def score(self, kind: str) -> torch.Tensor:
        return self.stats[kind]["ema"]


@register
class Platon(Sensitivity):
    """PLATON (Zhang et al., ICML 2022, eqs. 5-7): the EMA times the EMA of its uncertainty
    U(t) = b2 U(t-1) + (1 - b2) |I(t) - I_bar(t)|, so that units whose sensitivity swings
    from batch to batch are not pruned on one low reading."""

    name = "platon"

    def update(self, kind: str, sensitivity: torch.Tensor) -> None:
        super().update(kind, sensitivity)
        stats = self.stats[kind]
        gap = (sensitivity - stats["ema"]).abs()
        stats["unc"] = self.beta2 * stats.get("unc", torch.zeros_like(gap)) + (1 - self.beta2) * gap

    def score(self, kind: str) -> torch.Tensor:
        stats = self.stats[kind]
        return stats["ema"] * stats["unc"]
