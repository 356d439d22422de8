"""Weight and temperature schedules over training progress, with their numbers."""

import math

import pytest
import torch

from compressor.distill.schedules import MIN_TEMPERATURE, temperature_at, weight_factor
from compressor.recipe import DistillConfig


def test_weight_schedules() -> None:
    assert [weight_factor("constant", p) for p in (0, 0.5, 1)] == [1, 1, 1]
    assert [weight_factor("linear_decay", p) for p in (0, 0.25, 1)] == [1, 0.75, 0]
    assert [weight_factor("linear_growth", p) for p in (0, 0.25, 1)] == [0, 0.25, 1]
    assert weight_factor("cosine_decay", 0.5) == pytest.approx(0.5)
    assert weight_factor("cosine_decay", 1.0) == pytest.approx(0.0)


def test_annealed_temperatures_run_from_start_to_end() -> None:
    z = torch.zeros(1, 2)
    linear = DistillConfig(temperature=4, temperature_schedule="linear", temperature_end=1)
    assert [temperature_at(linear, p, z, z) for p in (0, 0.5, 1)] == [4, 2.5, 1]
    cosine = DistillConfig(temperature=4, temperature_schedule="cosine", temperature_end=1)
    assert temperature_at(cosine, 0.25, z, z) == pytest.approx(
        4 - 3 * (1 - math.cos(math.pi / 4)) / 2
    )
    assert temperature_at(DistillConfig(temperature=3), 0.7, z, z) == 3


def test_flsw_gives_disagreeing_examples_a_lower_temperature() -> None:
    cfg = DistillConfig(
        temperature=2, temperature_schedule="flsw", temperature_beta=1, temperature_gamma=1
    )
    s = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    t = torch.tensor([[3.0, 0.0], [0.0, 2.0]])  # example 0 agrees (cos 1), example 1 orthogonal
    w = torch.tensor([0.0, 1.0])
    assert torch.allclose(temperature_at(cfg, 0.0, s, t), 2 + (w.mean() - w), atol=1e-4)


def test_cwsm_follows_student_confidence_and_is_clamped() -> None:
    cfg = DistillConfig(temperature=1, temperature_schedule="cwsm", temperature_beta=0.5)
    s = torch.tensor([[0.0, 0.0], [5.0, 0.0]])
    w = 1 / (torch.softmax(s, -1).max(-1).values + 1e-3)
    assert torch.allclose(temperature_at(cfg, 0.0, s, s), 1 + (w.mean() - w) * 0.5)
    hot = DistillConfig(temperature=1, temperature_schedule="cwsm", temperature_beta=100)
    assert temperature_at(hot, 0.0, s, s).min().item() == pytest.approx(MIN_TEMPERATURE)
