"""Distillation losses, each a small module registered by name for the recipe.

Prediction-layer terms (`soft_kd`, `hard_ce`) read logits and are mixed by the recipe's
`alpha`; the registered terms read what the student kind's adaptor exposes (hidden states,
attentions, hooked Q/K/V), so neither model is edited. A term declares what it needs and the
objective asks the models for exactly that. A new term is one module in this package: it
registers itself with `@register` and the recipe can name it.
"""

from compressor.distill.losses._base import (
    IntermediateLossModule,
    ModelView,
    hard_ce,
    masked_mean,
    projection,
    register,
    soft_kd,
)
from compressor.registry import LOSSES

INTERMEDIATE_LOSSES = LOSSES

__all__ = [
    "INTERMEDIATE_LOSSES",
    "IntermediateLossModule",
    "ModelView",
    "hard_ce",
    "masked_mean",
    "projection",
    "register",
    "soft_kd",
]
