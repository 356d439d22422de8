"""MiniLM's value relation: the self-attention of the values, matched by KL."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from compressor.distill.losses._base import IntermediateLossModule, register
from compressor.distill.losses.attention import check_heads


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
    needs_hidden_states = False
    uses_embeddings = False

    def forward(self, student, teacher, attention_mask):
        key_mask = attention_mask[:, None, None, :].bool()
        query_mask = attention_mask[:, None, :].to(student.logits.dtype)
        total = student.logits.new_zeros(())
        for s_idx, t_idx in self.pairs:
            v_s, v_t = student.qkv[s_idx - 1].v, teacher.qkv[t_idx - 1].v
            check_heads(self.name, v_s.shape[1], v_t.shape[1])
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
