"""Distillation losses, each a small module registered by name for the recipe.

Prediction-layer terms (`soft_kd`, `hard_ce`) read logits and are mixed by the recipe's
`alpha`; the registered terms read what HF models return with `output_hidden_states` /
`output_attentions`, so neither model is edited. A term declares what it needs and the
objective asks the models for exactly that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from compressor.distill.capture import LayerQKV
from compressor.distill.mapping import LayerMap
from compressor.errors import UserError

INTERMEDIATE_LOSSES: dict[str, type[IntermediateLossModule]] = {}


@dataclass
class ModelView:
    """What a loss may read of one model's forward pass: logits, hidden states (0 =
    embeddings), post-softmax attentions and hooked Q/K/V, each present when asked for."""

    logits: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    qkv: list[LayerQKV] | None = None


def register(cls: type[IntermediateLossModule]) -> type[IntermediateLossModule]:
    """Make a loss selectable by its `name` in the recipe's `distill.intermediate` list."""
    INTERMEDIATE_LOSSES[cls.name] = cls
    return cls


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

    `needs_attentions` asks both models for `output_attentions`, `needs_qkv` hooks their
    Q/K/V projections (`capture.py`); hidden states are always collected when any term is
    present. Terms read a `ModelView` of each model. `default_map` is the layer map of the
    term's paper, used when the recipe names none, so a bare `{name: attention_kl}` is
    MiniLM's method rather than a uniform variant of it.
    """

    name: ClassVar[str]
    default_map: ClassVar[LayerMap] = "uniform"
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


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens of a (batch, seq) tensor: pads must not be learned from."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1)


def _projection(student_dim: int, teacher_dim: int) -> nn.Module:
    return nn.Identity() if student_dim == teacher_dim else nn.Linear(student_dim, teacher_dim)


@register
class HiddenMSE(IntermediateLossModule):
    """TinyBERT (Jiao et al., 2020), eqs. 8-9: MSE(H_S W_h, H_T) per mapped layer, summed;
    pair (0, 0) is the embedding-layer loss MSE(E_S W_e, E_T) with its own W_e.

    The projections are learned only when widths differ; they train with the student and are
    dropped at the end. Padding positions are excluded from the mean (the paper does not
    say; averaging over pads would reward matching pad vectors).
    """

    name = "hidden_mse"

    def __init__(self, pairs: list[tuple[int, int]], student_dim: int, teacher_dim: int):
        super().__init__(pairs, student_dim, teacher_dim)
        self.proj = _projection(student_dim, teacher_dim)
        self.embedding_proj = _projection(student_dim, teacher_dim)

    def forward(self, student, teacher, attention_mask):
        total = student.logits.new_zeros(())
        for s_idx, t_idx in self.pairs:
            proj = self.embedding_proj if s_idx == 0 else self.proj
            diff = proj(student.hidden_states[s_idx]) - teacher.hidden_states[t_idx]
            total = total + _masked_mean(diff.pow(2).mean(-1), attention_mask)
        return total


@register
class HiddenCosine(IntermediateLossModule):
    """DistilBERT (Sanh et al., 2019), sec. 3: cosine embedding loss 1 - cos(h_S, h_T),
    aligning the directions of hidden vectors. Needs equal widths, as in the paper (the
    student there keeps the teacher's hidden size). The paper aligns the last hidden states
    only, hence the `last` default map."""

    name = "hidden_cosine"
    default_map = "last"

    def __init__(self, pairs: list[tuple[int, int]], student_dim: int, teacher_dim: int):
        super().__init__(pairs, student_dim, teacher_dim)
        if student_dim != teacher_dim:
            raise UserError(
                f"hidden_cosine needs equal widths (student {student_dim}, teacher "
                f"{teacher_dim}) — use hidden_mse, which learns a projection"
            )

    def forward(self, student, teacher, attention_mask):
        total = student.logits.new_zeros(())
        for s_idx, t_idx in self.pairs:
            cos = F.cosine_similarity(
                student.hidden_states[s_idx], teacher.hidden_states[t_idx], dim=-1
            )
            total = total + _masked_mean(1 - cos, attention_mask)
        return total


@register
class PatientCLS(IntermediateLossModule):
    """Patient KD (Sun et al., 2019), eq. 3: sum over mapped layers of
    || h_S/||h_S|| - h_T/||h_T|| ||^2 on the [CLS] vectors. Embeddings are not used; the
    default map is the paper's PKD-Skip (`pkd_last` is its other variant)."""

    name = "pkd_cls"
    default_map = "skip"
    uses_embeddings = False

    def __init__(self, pairs: list[tuple[int, int]], student_dim: int, teacher_dim: int):
        super().__init__(pairs, student_dim, teacher_dim)
        self.proj = _projection(student_dim, teacher_dim)

    def forward(self, student, teacher, attention_mask):
        total = student.logits.new_zeros(())
        for s_idx, t_idx in self.pairs:
            s = F.normalize(self.proj(student.hidden_states[s_idx][:, 0]), dim=-1)
            t = F.normalize(teacher.hidden_states[t_idx][:, 0], dim=-1)
            total = total + (s - t).pow(2).sum(-1).mean()
        return total


def _pair_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(batch, 1, q, k) mask of real query x real key positions."""
    mask = attention_mask.to(dtype)
    return mask[:, None, :, None] * mask[:, None, None, :]


def _check_heads(loss: str, student_heads: int, teacher_heads: int) -> None:
    if student_heads != teacher_heads:
        raise UserError(
            f"{loss} needs equal head counts (student {student_heads}, teacher "
            f"{teacher_heads}) — drop it or keep the teacher's heads"
        )


@register
class AttentionMSE(IntermediateLossModule):
    """TinyBERT (Jiao et al., 2020), eq. 7: (1/h) sum_i MSE(A_S^i, A_T^i) per mapped layer on
    the unnormalised scores A = QK^T / sqrt(d_k), as the paper does.

    The scores are rebuilt from the Q/K projections read by hooks (HF models only return
    probabilities). Pairs involving a padded query or key are excluded from the mean, as
    TinyBERT's code zeroes the masked scores. Head counts must match, as in the paper.
    """

    name = "attention_mse"
    needs_qkv = True
    uses_embeddings = False

    def forward(self, student, teacher, attention_mask):
        mask = _pair_mask(attention_mask, student.logits.dtype)
        total = student.logits.new_zeros(())
        for s_idx, t_idx in self.pairs:
            s, t = student.qkv[s_idx - 1], teacher.qkv[t_idx - 1]
            _check_heads(self.name, s.q.shape[1], t.q.shape[1])
            a_s = s.q @ s.k.transpose(-1, -2) / s.q.shape[-1] ** 0.5
            a_t = t.q @ t.k.transpose(-1, -2) / t.q.shape[-1] ** 0.5
            sq = (a_s - a_t).pow(2) * mask
            total = total + sq.sum() / (mask.sum() * a_s.shape[1]).clamp(min=1)
        return total


@register
class AttentionProbMSE(IntermediateLossModule):
    """TinyBERT's attention MSE (eq. 7) on the post-softmax probabilities instead of the
    scores: the option the issue asks for, bounded in [0, 1] and so less sensitive to the
    scale of the teacher's logits. Read from `output_attentions`."""

    name = "attention_prob_mse"
    needs_attentions = True
    uses_embeddings = False

    def forward(self, student, teacher, attention_mask):
        mask = _pair_mask(attention_mask, student.logits.dtype)
        total = student.logits.new_zeros(())
        for s_idx, t_idx in self.pairs:
            a_s, a_t = student.attentions[s_idx - 1], teacher.attentions[t_idx - 1]
            _check_heads(self.name, a_s.shape[1], a_t.shape[1])
            sq = (a_s - a_t).pow(2) * mask
            total = total + sq.sum() / (mask.sum() * a_s.shape[1]).clamp(min=1)
        return total


@register
class AttentionKL(IntermediateLossModule):
    """MiniLM (Wang et al., 2020), eq. 6: KL(A_T || A_S) of the self-attention
    distributions, averaged over heads and real query positions; the paper uses the last
    layer only, hence the `last` default map. Head counts must match (MiniLM-v1). Padded
    keys need no mask: HF's softmax gives them ~0 teacher probability, which weights them
    out of the KL.
    """

    name = "attention_kl"
    default_map = "last"
    needs_attentions = True
    uses_embeddings = False

    def forward(self, student, teacher, attention_mask):
        eps = 1e-12
        query_mask = attention_mask[:, None, :].to(student.logits.dtype)
        total = student.logits.new_zeros(())
        for s_idx, t_idx in self.pairs:
            a_s, a_t = student.attentions[s_idx - 1], teacher.attentions[t_idx - 1]
            _check_heads(self.name, a_s.shape[1], a_t.shape[1])
            kl = (a_t * ((a_t + eps).log() - (a_s + eps).log())).sum(-1)  # (b, heads, q)
            total = total + (kl * query_mask).sum() / (query_mask.sum() * kl.shape[1])
        return total


@register
class ValueRelationKL(IntermediateLossModule):
    """MiniLM (Wang et al., 2020), eqs. 7-8: KL(VR_T || VR_S) with the value relation
    VR = softmax(V V^T / sqrt(d_k)) per head, averaged over heads and query positions; last
    layer only in the paper, hence the `last` default map. Values are read by hooks on the
    value projections; padded keys are masked out of the softmax, padded queries out of the
    mean.
    """

    name = "value_relation_kl"
    default_map = "last"
    needs_qkv = True
    uses_embeddings = False

    def forward(self, student, teacher, attention_mask):
        key_mask = attention_mask[:, None, None, :].bool()
        query_mask = attention_mask[:, None, :].to(student.logits.dtype)
        total = student.logits.new_zeros(())
        for s_idx, t_idx in self.pairs:
            v_s, v_t = student.qkv[s_idx - 1].v, teacher.qkv[t_idx - 1].v
            _check_heads(self.name, v_s.shape[1], v_t.shape[1])
            log_vr = [
                (v @ v.transpose(-1, -2) / v.shape[-1] ** 0.5)
                .masked_fill(~key_mask, torch.finfo(v.dtype).min)
                .log_softmax(-1)
                for v in (v_s, v_t)
            ]
            kl = F.kl_div(log_vr[0], log_vr[1], log_target=True, reduction="none")
            kl = kl.masked_fill(~key_mask, 0).sum(-1)  # (batch, heads, q)
            total = total + (kl * query_mask).sum() / (query_mask.sum() * kl.shape[1])
        return total


@register
class LogitsMSE(IntermediateLossModule):
    """Tang et al. (2019), "Distilling Task-Specific Knowledge from BERT into Simple Neural
    Networks", eq. 2: ||z_T - z_S||^2 on the raw logits, averaged over the batch. A
    prediction-layer term: the layer map is not used."""

    name = "logits_mse"

    def forward(self, student, teacher, attention_mask):
        return (student.logits - teacher.logits).pow(2).sum(-1).mean()


@register
class NeuronSelectivityMMD(IntermediateLossModule):
    """NST (Huang & Wang, 2017, "Like What You Like"), eqs. 5-7 with the polynomial kernel
    k(x, y) = (x^T y)^2 (d = 2, c = 0, the paper's best): each hidden neuron is a pattern
    over the example's real tokens, normalised to unit length, and the student's neurons
    are pulled towards the teacher's distribution by the squared MMD

        (1/C_T^2) sum k(t_i, t_i') + (1/C_S^2) sum k(s_j, s_j') - (2 / C_T C_S) sum k(t_i, s_j),

    per example, averaged over the batch and summed over mapped layers. Written with the
    token-by-token Gram matrices G = F^T F of the normalised patterns it is
    ||G_T / C_T - G_S / C_S||_F^2, so widths may differ without a projection. Pads are zeroed
    before normalising, so they add nothing. TextBrewer's `mmd` is a variant: an MSE of
    unnormalised token Gram matrices, without the neuron normalisation.
    """

    name = "nst_mmd"

    def forward(self, student, teacher, attention_mask):
        mask = attention_mask[:, :, None].to(student.logits.dtype)
        total = student.logits.new_zeros(())
        for s_idx, t_idx in self.pairs:
            grams = []
            for state in (student.hidden_states[s_idx], teacher.hidden_states[t_idx]):
                patterns = F.normalize(state * mask, dim=1)  # each neuron over the tokens
                grams.append(patterns @ patterns.transpose(1, 2) / state.shape[-1])
            total = total + (grams[1] - grams[0]).pow(2).sum((1, 2)).mean()
        return total


@register
class FlowOfSolution(IntermediateLossModule):
    """FSP (Yim et al., 2017, "A Gift from Knowledge Distillation"), eqs. 1-2: the flow
    between two layers is G = F_1^T F_2 / n (hidden x hidden, n = real tokens, as h x w in
    the paper), and the student matches the teacher's flow for every consecutive pair of
    mapped layers: the layer map's pairs (s_k, t_k), (s_k+1, t_k+1) give one section each.
    Widths that differ go through one learned projection of the student's states.
    Deviation: the squared Frobenius distance is averaged over the hidden x hidden entries
    (as TextBrewer's `fsp` does) instead of summed, so that its weight does not grow with the
    square of the width.
    """

    name = "fsp"

    def __init__(self, pairs: list[tuple[int, int]], student_dim: int, teacher_dim: int):
        super().__init__(pairs, student_dim, teacher_dim)
        if len(self.pairs) < 2:
            raise UserError(
                f"fsp needs at least two mapped layers, got {self.pairs} — use layer_map "
                "uniform or an explicit list of two or more pairs"
            )
        self.proj = _projection(student_dim, teacher_dim)

    def forward(self, student, teacher, attention_mask):
        mask = attention_mask[:, :, None].to(student.logits.dtype)
        tokens = mask.sum(1, keepdim=True).clamp(min=1)  # (batch, 1, 1)

        def flow(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
            return (first * mask).transpose(1, 2) @ (second * mask) / tokens

        total = student.logits.new_zeros(())
        for (s_a, t_a), (s_b, t_b) in zip(self.pairs, self.pairs[1:], strict=False):
            g_s = flow(self.proj(student.hidden_states[s_a]), self.proj(student.hidden_states[s_b]))
            g_t = flow(teacher.hidden_states[t_a], teacher.hidden_states[t_b])
            total = total + (g_s - g_t).pow(2).mean()
        return total
