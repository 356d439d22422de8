import math

import pytest
import torch

from compressor.distill.losses import ModelView, hard_ce, soft_kd
from compressor.distill.losses.attention import AttentionKL, AttentionMSE, AttentionProbMSE
from compressor.distill.losses.fsp import FlowOfSolution
from compressor.distill.losses.hidden import HiddenCosine, HiddenMSE, PatientCLS
from compressor.distill.losses.logits import LogitsMSE
from compressor.distill.losses.nst import NeuronSelectivityMMD
from compressor.distill.losses.value_relation import ValueRelationKL
from compressor.distill.mapping import hidden_pairs
from compressor.errors import UserError
from compressor.students import LayerQKV, init_layers, uniform_layers


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


def out(hidden=None, attentions=None, qkv=None) -> ModelView:
    """What the objective hands a loss, with only the fields under test filled."""
    return ModelView(torch.zeros(1, 2), hidden, attentions, qkv)


def test_hidden_mse_same_width_ignores_padding() -> None:
    s = (torch.zeros(1, 3, 2), torch.ones(1, 3, 2))
    t = (torch.zeros(1, 3, 2), torch.full((1, 3, 2), 3.0))
    t[1][0, 2] = 100.0  # a padded position: must not count
    mask = torch.tensor([[1, 1, 0]])
    loss = HiddenMSE([(0, 0), (1, 1)], 2, 2)
    assert isinstance(loss.proj, torch.nn.Identity)
    assert loss(out(s), out(t), mask).item() == pytest.approx(4.0)  # (1-3)^2, layer 1 only


def test_hidden_mse_learns_a_projection_when_widths_differ() -> None:
    torch.manual_seed(0)
    loss = HiddenMSE([(1, 2)], 4, 8)
    assert loss.proj.weight.shape == (8, 4)
    s = (torch.randn(2, 5, 4), torch.randn(2, 5, 4))
    target = torch.nn.Linear(4, 8)
    t = (None, None, target(s[1]).detach())
    mask = torch.ones(2, 5)
    opt = torch.optim.Adam(loss.parameters(), lr=0.05)
    start = loss(out(s), out(t), mask).item()
    for _ in range(300):
        opt.zero_grad()
        value = loss(out(s), out(t), mask)
        value.backward()
        opt.step()
    assert value.item() < start * 0.01


def test_hidden_cosine_is_one_minus_cosine() -> None:
    s = (None, torch.tensor([[[1.0, 0.0], [1.0, 1.0]]]))
    t = (None, torch.tensor([[[0.0, 1.0], [2.0, 2.0]]]))
    loss = HiddenCosine([(0, 0), (1, 1)], 2, 2)
    assert loss.pairs == [(0, 0), (1, 1)]
    # token 0: orthogonal -> 1; token 1: same direction -> 0; embeddings pair reads index 0
    value = loss(out((s[1], s[1])), out((t[1], t[1])), torch.ones(1, 2)).item()
    assert value == pytest.approx(1.0)
    with pytest.raises(UserError, match="equal widths"):
        HiddenCosine([(1, 1)], 2, 4)


def test_pkd_uses_normalised_cls_vectors_only() -> None:
    s = (None, torch.tensor([[[3.0, 0.0], [9.0, 9.0]]]))
    t = (None, torch.tensor([[[0.0, 5.0], [-9.0, 1.0]]]))
    loss = PatientCLS([(0, 0), (1, 1)], 2, 2)
    assert loss.pairs == [(1, 1)]  # PKD does not use the embeddings
    # ||(1,0) - (0,1)||^2 = 2, whatever the norms and the non-CLS tokens
    assert loss(out(s), out(t), torch.ones(1, 2)).item() == pytest.approx(2.0)


def test_soft_kd_several_teachers_average_their_probabilities() -> None:
    s = torch.tensor([[0.3, -0.2]])
    t1, t2 = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    temp = 2.0
    p_t = 0.25 * torch.softmax(t1 / temp, -1) + 0.75 * torch.softmax(t2 / temp, -1)
    p_s = torch.softmax(s / temp, -1)
    expected = float((p_t * (p_t.log() - p_s.log())).sum()) * temp**2
    got = soft_kd(s, [t1, t2], temp, [1.0, 3.0]).item()
    assert got == pytest.approx(expected, rel=1e-5)
    assert soft_kd(s, [t1, t1], temp, [1.0, 5.0]).item() == pytest.approx(
        soft_kd(s, t1, temp).item()
    )


def test_soft_kd_per_example_temperature_scales_each_example() -> None:
    s = torch.tensor([[1.0, 2.0], [0.5, -1.0]])
    t = torch.tensor([[2.0, 1.0], [0.0, 3.0]])
    temps = torch.tensor([1.5, 4.0])
    each = [soft_kd(s[i : i + 1], t[i : i + 1], float(temps[i])).item() for i in range(2)]
    assert soft_kd(s, t, temps).item() == pytest.approx(sum(each) / 2, rel=1e-5)


def test_attention_mse_on_unnormalised_scores_of_real_tokens() -> None:
    q = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])  # (batch 1, head 1, seq 2, dim 2)
    k_t = torch.tensor([[[[2.0, 0.0], [5.0, 5.0]]]])
    k_s = torch.tensor([[[[0.0, 0.0], [9.0, 9.0]]]])
    zeros = torch.zeros_like(q)
    s_view = out(qkv=[LayerQKV(q, k_s, zeros)])
    t_view = out(qkv=[LayerQKV(q, k_t, zeros)])
    # only query 0 x key 0 is real: scores 0 vs 2/sqrt(2) -> squared error 2
    loss = AttentionMSE([(0, 0), (1, 1)], 2, 2)
    assert loss.pairs == [(1, 1)] and AttentionMSE.needs_qkv
    assert loss(s_view, t_view, torch.tensor([[1, 0]])).item() == pytest.approx(2.0)
    # both real: (q,k) cells (0,0): 0 vs 2, (0,1): 9 vs 5, (1,0): 0 vs 0, (1,1): 9 vs 5, / sqrt 2
    expected = (4 + 16 + 0 + 16) / 2 / 4
    assert loss(s_view, t_view, torch.ones(1, 2)).item() == pytest.approx(expected)


def test_value_relation_kl_matches_hand_computed_kl() -> None:
    v_t = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    v_s = torch.tensor([[[[1.0, 1.0], [1.0, 1.0]]]])
    loss = ValueRelationKL([(2, 6)], 2, 2)
    zeros = torch.zeros_like(v_t)
    s_view = out(qkv=[None, LayerQKV(zeros, zeros, v_s)])
    t_view = out(qkv=[None] * 5 + [LayerQKV(zeros, zeros, v_t)])
    vr_t = torch.softmax(v_t[0, 0] @ v_t[0, 0].T / math.sqrt(2), -1)
    vr_s = torch.softmax(v_s[0, 0] @ v_s[0, 0].T / math.sqrt(2), -1)  # uniform rows
    expected = float((vr_t * (vr_t.log() - vr_s.log())).sum(-1).mean())
    assert loss(s_view, t_view, torch.ones(1, 2)).item() == pytest.approx(expected, rel=1e-5)
    # with the second token padded, each row is a softmax over one key: KL 0
    assert loss(s_view, t_view, torch.tensor([[1, 0]])).item() == pytest.approx(0.0, abs=1e-6)


def test_attention_prob_mse_on_real_tokens_averaged_over_heads() -> None:
    a_s = torch.zeros(1, 2, 2, 2)
    a_t = torch.zeros(1, 2, 2, 2)
    a_t[0, 0, 0, 0] = 1.0  # one entry differs by 1 in head 0
    a_t[0, 1, 1, 1] = 7.0  # a padded query/key: ignored
    loss = AttentionProbMSE([(0, 0), (1, 1)], 4, 4)
    mask = torch.tensor([[1, 0]])
    # 1 real (query, key) cell x 2 heads: mean squared error = 1 / 2
    assert loss(out(attentions=(a_s,)), out(attentions=(a_t,)), mask).item() == pytest.approx(0.5)
    with pytest.raises(UserError, match="equal head counts"):
        loss(out(attentions=(torch.zeros(1, 1, 2, 2),)), out(attentions=(a_t,)), mask)


def test_attention_kl_matches_hand_computed_kl() -> None:
    a_t = torch.tensor([[[[0.5, 0.5], [0.9, 0.1]]]])
    a_s = torch.tensor([[[[0.25, 0.75], [0.9, 0.1]]]])
    loss = AttentionKL([(3, 6)], 4, 4)
    expected = (0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)) / 2  # mean over 2 queries
    got = loss(out(attentions=(None, None, a_s)), out(attentions=(None,) * 5 + (a_t,)),
               torch.ones(1, 2))  # fmt: skip
    assert got.item() == pytest.approx(expected, rel=1e-5)
    assert AttentionKL.needs_attentions and not HiddenMSE.needs_attentions


def test_attention_kl_refuses_a_head_mismatch() -> None:
    # 1 student head against 2 teacher heads would broadcast silently without the check
    a_s, a_t = torch.full((1, 1, 2, 2), 0.5), torch.full((1, 2, 2, 2), 0.5)
    loss = AttentionKL([(1, 1)], 4, 4)
    with pytest.raises(UserError, match=r"attention_kl needs equal head counts \(student 1, "
                       r"teacher 2\)"):  # fmt: skip
        loss(out(attentions=(a_s,)), out(attentions=(a_t,)), torch.ones(1, 2))


def test_attention_kl_averages_over_real_queries_only() -> None:
    a_t = torch.full((2, 1, 3, 3), 1 / 3)
    a_s = a_t.clone()  # example 0: identical, KL 0 on its 3 real queries
    # example 1, third token padded: HF gives the padded key ~0 teacher probability
    a_t[1, 0] = torch.tensor([[0.5, 0.5, 0.0], [0.8, 0.2, 0.0], [0.0, 0.0, 1.0]])
    a_s[1, 0] = torch.tensor([[0.25, 0.75, 0.0], [0.8, 0.1, 0.1], [1.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    # query 0: 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.75); query 1: mass the student puts on the
    # padded key costs only through its own row, 0.2 ln(0.2/0.1); the padded query 2 (KL
    # ~28) is left out; 5 real queries x 1 head
    expected = (0.5 * math.log(2) + 0.5 * math.log(2 / 3) + 0.2 * math.log(2)) / 5
    got = AttentionKL([(1, 1)], 4, 4)(out(attentions=(a_s,)), out(attentions=(a_t,)), mask)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_hidden_mse_embedding_pair_has_its_own_projection() -> None:
    loss = HiddenMSE([(0, 0), (1, 1)], 2, 3)
    assert loss.embedding_proj is not loss.proj
    with torch.no_grad():  # W_e keeps the two coordinates; W_h doubles them and adds their sum
        loss.embedding_proj.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
        loss.proj.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0]]))
        loss.embedding_proj.bias.zero_()
        loss.proj.bias.zero_()
    h = torch.tensor([[[1.0, 2.0]]])
    s = (h, h)  # the same student vector at the embeddings and at layer 1
    t = (torch.tensor([[[1.0, 2.0, 0.0]]]), torch.tensor([[[2.0, 4.0, 3.0]]]))
    mask = torch.ones(1, 1)
    # each pair is matched exactly by its own projection; one shared W_h would leave
    # (2-1)^2 + (4-2)^2 + (3-0)^2 = 14, / 3 dims, on the embedding pair
    assert loss(out(s), out(t), mask).item() == pytest.approx(0.0, abs=1e-6)
    t_off = (torch.tensor([[[1.0, 2.0, 3.0]]]), t[1])
    embeddings_only = HiddenMSE([(0, 0)], 2, 3)
    embeddings_only.load_state_dict(loss.state_dict())
    embeddings_only(out(s), out(t_off), mask).backward()
    assert embeddings_only.embedding_proj.weight.grad.abs().sum() > 0
    assert embeddings_only.proj.weight.grad is None  # layer pairs' W_h is not trained by it


def test_each_loss_defaults_to_its_papers_layer_map() -> None:
    assert HiddenMSE.default_map == AttentionMSE.default_map == "uniform"
    assert AttentionProbMSE.default_map == "uniform"
    assert AttentionKL.default_map == ValueRelationKL.default_map == "last"  # MiniLM
    assert HiddenCosine.default_map == "last"  # DistilBERT
    assert PatientCLS.default_map == "skip"  # PKD-Skip


def test_logits_mse_is_squared_distance_of_raw_logits() -> None:
    s = ModelView(torch.tensor([[1.0, 2.0], [0.0, 0.0]]))
    t = ModelView(torch.tensor([[3.0, 2.0], [1.0, -1.0]]))
    # (4 + 0 + 1 + 1) / 2 examples
    assert LogitsMSE([], 2, 2)(s, t, torch.ones(2, 1)).item() == pytest.approx(3.0)


def test_uniform_mapping_is_tinybert_g() -> None:
    assert uniform_layers(3, 6) == [1, 3, 5]
    assert uniform_layers(4, 12) == [2, 5, 8, 11]
    assert hidden_pairs("uniform", 3, 6) == [(0, 0), (1, 2), (2, 4), (3, 6)]
    assert hidden_pairs("last", 3, 6) == [(3, 6)]
    assert hidden_pairs([(1, 1)], 3, 6) == [(1, 1)]


def test_pkd_skip_and_last_maps_leave_the_top_layer_to_the_predictions() -> None:
    # Sun et al. (2019), sec. 3.2: BERT6 of BERT12 learns from {2, 4, 6, 8, 10} (Skip) or
    # {7, 8, 9, 10, 11} (Last); the student's top layer is not matched
    assert hidden_pairs("skip", 6, 12) == [(1, 2), (2, 4), (3, 6), (4, 8), (5, 10)]
    assert hidden_pairs("pkd_last", 6, 12) == [(1, 7), (2, 8), (3, 9), (4, 10), (5, 11)]
    assert hidden_pairs("skip", 3, 12) == [(1, 4), (2, 8)]
    assert hidden_pairs("pkd_last", 3, 12) == [(1, 10), (2, 11)]
    assert hidden_pairs("skip", 3, 6) == [(1, 2), (2, 4)]
    assert hidden_pairs("pkd_last", 3, 6) == [(1, 4), (2, 5)]
    assert hidden_pairs("skip", 4, 6) == [(1, 1), (2, 3), (3, 4)]  # m * N // M
    with pytest.raises(UserError, match="1-layer student has none"):
        hidden_pairs("skip", 1, 6)


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


def _nst_by_the_paper(s: torch.Tensor, t: torch.Tensor) -> float:
    """Eq. 7 of Huang & Wang written out: neurons (columns) over tokens, unit length,
    polynomial kernel (x.y)^2, every pair summed."""

    def neurons(h: torch.Tensor) -> list[torch.Tensor]:
        return [h[:, i] / h[:, i].norm() for i in range(h.shape[1])]

    ns, nt = neurons(s), neurons(t)

    def k(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(a @ b) ** 2

    return (
        sum(k(a, b) for a in nt for b in nt) / len(nt) ** 2
        + sum(k(a, b) for a in ns for b in ns) / len(ns) ** 2
        - 2 * sum(k(a, b) for a in nt for b in ns) / (len(nt) * len(ns))
    )


def test_nst_mmd_is_the_papers_polynomial_mmd_on_real_tokens_across_widths() -> None:
    torch.manual_seed(0)
    s, t = torch.randn(2, 4, 3), torch.randn(2, 4, 5)  # widths differ: no projection needed
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    loss = NeuronSelectivityMMD([(1, 2)], 3, 5)
    assert not list(loss.parameters())
    expected = (_nst_by_the_paper(s[0], t[0]) + _nst_by_the_paper(s[1, :2], t[1, :2])) / 2
    value = loss(out((None, s)), out((None, None, t)), mask).item()
    assert value == pytest.approx(expected, rel=1e-5)
    assert value > 0
    # a scaled copy of the teacher has the same neuron selectivity: no loss
    same = loss(out((None, 7 * t)), out((None, None, t)), torch.ones(2, 4)).item()
    assert same == pytest.approx(0.0, abs=1e-6)


def test_fsp_matches_flow_matrices_of_consecutive_mapped_layers() -> None:
    torch.manual_seed(0)
    s = tuple(torch.randn(1, 3, 2) for _ in range(3))
    t = tuple(torch.randn(1, 3, 2) for _ in range(5))
    mask = torch.tensor([[1, 1, 0]])
    loss = FlowOfSolution([(0, 0), (1, 2), (2, 4)], 2, 2)

    def flow(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # real tokens only
        return a[0, :2].T @ b[0, :2] / 2

    expected = sum(
        float((flow(s[a], s[b]) - flow(t[c], t[d])).pow(2).mean())
        for (a, c), (b, d) in (((0, 0), (1, 2)), ((1, 2), (2, 4)))
    )
    assert loss(out(s), out(t), mask).item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(UserError, match="at least two mapped layers"):
        FlowOfSolution([(3, 6)], 2, 2)
    assert FlowOfSolution([(0, 0), (1, 1)], 2, 4).proj.weight.shape == (4, 2)
