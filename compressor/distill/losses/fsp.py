"""Flow of solution procedure (FSP) matrices between consecutive mapped layers."""

from __future__ import annotations

import torch

from compressor.distill.losses._base import IntermediateLossModule, projection, register
from compressor.errors import UserError


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
        self.proj = projection(student_dim, teacher_dim)

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
