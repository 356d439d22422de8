"""Attention terms: TinyBERT's score and probability MSE, MiniLM's attention KL."""

from __future__ import annotations

import torch

from compressor.distill.losses._base import IntermediateLossModule, register
from compressor.errors import UserError


def pair_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(batch, 1, q, k) mask of real query x real key positions."""
    mask = attention_mask.to(dtype)
    return mask[:, None, :, None] * mask[:, None, None, :]


def check_heads(loss: str, student_heads: int, teacher_heads: int) -> None:
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
    needs_hidden_states = False
    uses_embeddings = False

    def forward(self, student, teacher, attention_mask):
        mask = pair_mask(attention_mask, student.logits.dtype)
        total = student.logits.new_zeros(())
        for s_idx, t_idx in self.pairs:
            s, t = student.qkv[s_idx - 1], teacher.qkv[t_idx - 1]
            check_heads(self.name, s.q.shape[1], t.q.shape[1])
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
    needs_hidden_states = False
    uses_embeddings = False

    def forward(self, student, teacher, attention_mask):
        mask = pair_mask(attention_mask, student.logits.dtype)
        total = student.logits.new_zeros(())
        for s_idx, t_idx in self.pairs:
            a_s, a_t = student.attentions[s_idx - 1], teacher.attentions[t_idx - 1]
            check_heads(self.name, a_s.shape[1], a_t.shape[1])
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
    needs_hidden_states = False
    uses_embeddings = False

    def forward(self, student, teacher, attention_mask):
        eps = 1e-12
        query_mask = attention_mask[:, None, :].to(student.logits.dtype)
        total = student.logits.new_zeros(())
        for s_idx, t_idx in self.pairs:
            a_s, a_t = student.attentions[s_idx - 1], teacher.attentions[t_idx - 1]
            check_heads(self.name, a_s.shape[1], a_t.shape[1])
            kl = (a_t * ((a_t + eps).log() - (a_s + eps).log())).sum(-1)  # (b, heads, q)
            total = total + (kl * query_mask).sum() / (query_mask.sum() * kl.shape[1])
        return total
