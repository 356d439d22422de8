"""Schedules over training progress p in [0, 1]: loss-term weights and the KD temperature.

Weight schedules follow TextBrewer's names (linear_decay = 1 - p, linear_growth = p) plus a
cosine decay. Temperatures either anneal from `temperature` to `temperature_end`
(linear / cosine) or are set per example from the logits, as TextBrewer's dynamic
schedulers do:

- `flsw` (after Zhao et al., arXiv:1911.07471): w = (1 - cos(z_S, z_T))^gamma and
  T_i = T + beta * (mean(w) - w_i): examples where the student disagrees with the teacher
  get a lower temperature, i.e. sharper targets.
- `cwsm`: w = 1 / (max_c softmax(z_S) + 1e-3) and T_i = T + beta * (mean(w) - w_i): the
  student's least confident examples get sharper targets.

Both read detached logits, so the temperature carries no gradient, and are clamped at
0.1: a large beta would otherwise give negative temperatures and flip the targets.
"""

from __future__ import annotations

import math

import torch

from compressor.recipe import DistillConfig, WeightSchedule

MIN_TEMPERATURE = 0.1


def weight_factor(schedule: WeightSchedule, progress: float) -> float:
    """Multiplier of a loss term's recipe weight at this point of training."""
    p = min(max(progress, 0.0), 1.0)
    if schedule == "linear_decay":
        return 1.0 - p
    if schedule == "linear_growth":
        return p
    if schedule == "cosine_decay":
        return 0.5 * (1.0 + math.cos(math.pi * p))
    return 1.0


def temperature_at(
    cfg: DistillConfig,
    progress: float,
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
) -> float | torch.Tensor:
    """The KD temperature: a float, or one value per example for the dynamic schedules."""
    base = cfg.temperature
    p = min(max(progress, 0.0), 1.0)
    kind = cfg.temperature_schedule
    if kind in ("linear", "cosine"):
        end = cfg.temperature_end if cfg.temperature_end is not None else base
        frac = p if kind == "linear" else 0.5 * (1.0 - math.cos(math.pi * p))
        return base + (end - base) * frac
    if kind == "flsw":
        with torch.no_grad():
            s = torch.nn.functional.normalize(student_logits.detach(), dim=-1, eps=1e-4)
            t = torch.nn.functional.normalize(teacher_logits.detach(), dim=-1, eps=1e-4)
            w = (1 - (s * t).sum(-1)).pow(cfg.temperature_gamma)
            return (base + (w.mean() - w) * cfg.temperature_beta).clamp(min=MIN_TEMPERATURE)
    if kind == "cwsm":
        with torch.no_grad():
            confidence = student_logits.detach().softmax(-1).max(-1).values
            w = 1 / (confidence + 1e-3)
            return (base + (w.mean() - w) * cfg.temperature_beta).clamp(min=MIN_TEMPERATURE)
    return base
