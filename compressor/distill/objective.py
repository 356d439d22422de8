"""The distillation objective of a recipe: Hinton's soft/hard mix plus intermediate terms.

    L = alpha * T^2 * KL(p_T^T || p_S^T) + (1 - alpha) * CE(y, p_S) + sum_i w_i * L_i

The teacher runs under no_grad with hidden states on, only when an intermediate term
needs them.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel

from compressor.distill.losses import INTERMEDIATE_LOSSES, hard_ce, soft_kd
from compressor.distill.mapping import hidden_pairs
from compressor.recipe import DistillConfig


class DistillObjective:
    """Callable `(student, batch) -> (loss, parts)` for the trainer."""

    def __init__(self, teacher: PreTrainedModel, student: PreTrainedModel, cfg: DistillConfig):
        self.teacher = teacher
        self.cfg = cfg
        s_cfg, t_cfg = student.config, teacher.config
        self.terms: list[tuple[str, float, nn.Module]] = [
            (
                spec.name,
                spec.weight,
                INTERMEDIATE_LOSSES[spec.name](
                    hidden_pairs(spec.layer_map, s_cfg.num_hidden_layers, t_cfg.num_hidden_layers),
                    s_cfg.hidden_size,
                    t_cfg.hidden_size,
                ),
            )
            for spec in cfg.intermediate
            if spec.weight > 0
        ]

    @property
    def modules(self) -> list[nn.Module]:
        """Trainable parts of the objective (projections W_h), optimised with the student."""
        return [module for _, _, module in self.terms]

    def __call__(
        self, student: PreTrainedModel, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        labels = batch["labels"]
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        wants = {
            "output_hidden_states": bool(self.terms),
            "output_attentions": any(m.needs_attentions for _, _, m in self.terms),
        }
        with torch.no_grad():
            t_out = self.teacher(**inputs, **wants)
        s_out = student(**inputs, **wants)
        kd = soft_kd(s_out.logits, t_out.logits, self.cfg.temperature)
        ce = hard_ce(s_out.logits, labels)
        loss = self.cfg.alpha * kd + (1 - self.cfg.alpha) * ce
        parts = {"soft_kd": kd.item(), "hard_ce": ce.item()}
        for name, weight, module in self.terms:
            value = module(s_out, t_out, inputs["attention_mask"])
            loss = loss + weight * value
            parts[name] = value.item()
        return loss, parts
