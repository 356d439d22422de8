"""Tang et al.'s logit regression, the loss of their BiLSTM students."""

from __future__ import annotations

from compressor.distill.losses._base import IntermediateLossModule, register


@register
class LogitsMSE(IntermediateLossModule):
    """Tang et al. (2019), "Distilling Task-Specific Knowledge from BERT into Simple Neural
    Networks", eq. 2: ||z_T - z_S||^2 on the raw logits, averaged over the batch. A
    prediction-layer term: the layer map is not used, and it reads the logits only, so
    a student without hidden states (a BiLSTM) can learn from it."""

    name = "logits_mse"
    needs_hidden_states = False

    def forward(self, student, teacher, attention_mask):
        return (student.logits - teacher.logits).pow(2).sum(-1).mean()
