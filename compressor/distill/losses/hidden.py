"""Hidden-state terms: TinyBERT's MSE, DistilBERT's cosine, Patient KD's [CLS] distance."""

from __future__ import annotations

import torch.nn.functional as F

from compressor.distill.losses._base import (
    IntermediateLossModule,
    masked_mean,
    projection,
    register,
)
from compressor.errors import UserError


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
        self.proj = projection(student_dim, teacher_dim)
        self.embedding_proj = projection(student_dim, teacher_dim)

    def forward(self, student, teacher, attention_mask):
        total = student.logits.new_zeros(())
        for s_idx, t_idx in self.pairs:
            proj = self.embedding_proj if s_idx == 0 else self.proj
            diff = proj(student.hidden_states[s_idx]) - teacher.hidden_states[t_idx]
            total = total + masked_mean(diff.pow(2).mean(-1), attention_mask)
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
            total = total + masked_mean(1 - cos, attention_mask)
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
        self.proj = projection(student_dim, teacher_dim)

    def forward(self, student, teacher, attention_mask):
        total = student.logits.new_zeros(())
        for s_idx, t_idx in self.pairs:
            s = F.normalize(self.proj(student.hidden_states[s_idx][:, 0]), dim=-1)
            t = F.normalize(teacher.hidden_states[t_idx][:, 0], dim=-1)
            total = total + (s - t).pow(2).sum(-1).mean()
        return total
