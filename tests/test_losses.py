import math

import pytest
import torch

from compressor.distill.losses import HiddenMSE, hard_ce, soft_kd
from compressor.distill.mapping import hidden_pairs, init_layers, uniform_layers
from compressor.errors import UserError


def test_soft_kd_matches_hand_computed_kl_times_t_squared() -> None:
    s = torch.tensor([[1.0, 2.0, 0.5]])
    t = torch.tensor([[2.0, 0.0, 1.0]])
    temp = 3.0
    p_t = torch.softmax(t / temp, -1)
    p_s = torch.softmax(s / temp, -1)
    expected = float((p_t * (p_t.log() - p_s.log())).sum()) * temp**2
    assert soft_kd(s, t, temp).item() == pytest.approx(expected, rel=1e-5)
    assert soft_kd(t, t, temp).item() == pytest.approx(0.0, abs=1e-7)


def test_soft_kd_averages_over_the_batch() -> None:
    s = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    t = torch.tensor([[2.0, 1.0], [0.0, 0.0]])
    assert soft_kd(s, t, 1.0).item() == pytest.approx(soft_kd(s[:1], t[:1], 1.0).item() / 2)


def test_hard_ce_is_cross_entropy() -> None:
    logits = torch.tensor([[0.0, math.log(3.0)]])
    assert hard_ce(logits, torch.tensor([1])).item() == pytest.approx(-math.log(0.75))


def test_hidden_mse_same_width_ignores_padding() -> None:
    s = (torch.zeros(1, 3, 2), torch.ones(1, 3, 2))
    t = (torch.zeros(1, 3, 2), torch.full((1, 3, 2), 3.0))
    t[1][0, 2] = 100.0  # a padded position: must not count
    mask = torch.tensor([[1, 1, 0]])
    loss = HiddenMSE([(0, 0), (1, 1)], 2, 2)
    assert isinstance(loss.proj, torch.nn.Identity)
    assert loss(s, t, mask).item() == pytest.approx(4.0)  # (1-3)^2 on real tokens, layer 1 only


def test_hidden_mse_learns_a_projection_when_widths_differ() -> None:
    torch.manual_seed(0)
    loss = HiddenMSE([(1, 2)], 4, 8)
    assert loss.proj.weight.shape == (8, 4)
    s = (torch.randn(2, 5, 4), torch.randn(2, 5, 4))
    target = torch.nn.Linear(4, 8)
    t = (None, None, target(s[1]).detach())
    mask = torch.ones(2, 5)
    opt = torch.optim.Adam(loss.parameters(), lr=0.05)
    start = loss(s, t, mask).item()
    for _ in range(300):
        opt.zero_grad()
        value = loss(s, t, mask)
        value.backward()
        opt.step()
    assert value.item() < start * 0.01


def test_uniform_mapping_is_tinybert_g() -> None:
    assert uniform_layers(3, 6) == [1, 3, 5]
    assert uniform_layers(4, 12) == [2, 5, 8, 11]
    assert hidden_pairs("uniform", 3, 6) == [(0, 0), (1, 2), (2, 4), (3, 6)]
    assert hidden_pairs("last", 3, 6) == [(3, 6)]
    assert hidden_pairs([(1, 1)], 3, 6) == [(1, 1)]


def test_init_layer_choices_and_errors() -> None:
    assert init_layers("first", 2, 6) == [0, 1]
    assert init_layers("last", 2, 6) == [4, 5]
    assert init_layers([0, 5], 2, 6) == [0, 5]
    with pytest.raises(UserError, match="exceeds"):
        init_layers("uniform", 7, 6)
    with pytest.raises(UserError, match="must list 2"):
        init_layers([0, 9], 2, 6)
    with pytest.raises(UserError, match="out of range"):
        hidden_pairs([(4, 1)], 3, 6)
