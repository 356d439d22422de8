"""Neuron selectivity transfer (NST): MMD of normalised neuron patterns."""

from __future__ import annotations

import torch.nn.functional as F

from compressor.distill.losses._base import IntermediateLossModule, register


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
