"""A one-layer BiLSTM sentence classifier (Tang et al. 2019, "Distilling Task-Specific
Knowledge from BERT into Simple Neural Networks", sec. 3.2), its siamese variant for
sentence pairs, and the same BiLSTM as a tagger: one label per token from that token's two
states (the shape of TextBrewer's BiGRU NER student).

This file imports only torch and transformers: `save_pretrained` copies it beside the weights
(the config's `auto_map` names it), so `AutoModelForSequenceClassification.from_pretrained(
folder, trust_remote_code=True)` (`AutoModelForTokenClassification` for a tagger) loads a
trained student anywhere, without this project.

Padding never reaches a real token's state. A bidirectional `nn.LSTM` run over a right-padded
batch would start its backward pass on the pads, so a sentence's logits would depend on the
longest sentence of its batch. Rather than `pack_padded_sequence` (PyTorch-side state that
an exported graph would have to reproduce), each direction is a one-way LSTM over the
sentence laid out from position 0, in plain tensor ops that the ONNX file keeps: the forward
one reads the tokens in order, the backward one reads them reversed (a gather by position),
and pads only ever follow the real tokens. Max-pooling does not care about order, so the
backward outputs are pooled as they come, without reversing them back; the tagger puts them
back in place with the same gather (reversing the real tokens is its own inverse).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput, TokenClassifierOutput


class BiLSTMConfig(PretrainedConfig):
    """Sizes of the student: `hidden_size` units per direction (Tang: 300), a ReLU layer of
    `mlp_size` (Tang: 400); `siamese` encodes the two sentences of a pair apart."""

    model_type = "compressor-bilstm"

    def __init__(
        self,
        vocab_size: int = 30522,
        embedding_dim: int = 300,
        hidden_size: int = 300,
        mlp_size: int = 400,
        siamese: bool = False,
        pad_token_id: int = 0,
        **kwargs: object,
    ) -> None:
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.hidden_size = hidden_size
        self.mlp_size = mlp_size
        self.siamese = siamese
        super().__init__(pad_token_id=pad_token_id, **kwargs)


class BiLSTMModel(PreTrainedModel):
    """Embeddings, the two one-way LSTMs, a ReLU layer and a classifier: what the sentence
    classifier and the tagger share; they differ in what reaches the ReLU layer."""

    config_class = BiLSTMConfig
    base_model_prefix = "bilstm"
    main_input_name = "input_ids"

    def __init__(self, config: BiLSTMConfig) -> None:
        super().__init__(config)
        # named `embeddings` so parameter counts that leave embedding tables out skip it
        self.embeddings = nn.Embedding(
            config.vocab_size, config.embedding_dim, padding_idx=config.pad_token_id
        )
        self.forward_lstm = nn.LSTM(config.embedding_dim, config.hidden_size, batch_first=True)
        self.backward_lstm = nn.LSTM(config.embedding_dim, config.hidden_size, batch_first=True)
        states = 2 * config.hidden_size
        self.mlp = nn.Linear(4 * states if config.siamese else states, config.mlp_size)
        self.classifier = nn.Linear(config.mlp_size, config.num_labels)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        """PyTorch's own initialisation (uniform +-1/sqrt(fan) for the LSTMs and layers); the
        kind overwrites the embedding table with the teacher's."""
        if isinstance(module, nn.Linear | nn.LSTM | nn.Embedding):
            module.reset_parameters()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings = value

    def _states(
        self, input_ids: torch.Tensor, start: torch.Tensor, length: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Both directions' states (batch, seq, 2 * hidden) of the `length` tokens from
        `start`, the backward ones in reading order of the reversed tokens; which positions
        are real; and the backward gather index."""
        # positions 0..seq-1 from tensor ops only, so the exported graph keeps seq dynamic
        steps = torch.ones_like(input_ids).cumsum(1) - 1
        inside = steps < length[:, None]
        forward_at = torch.where(inside, start[:, None] + steps, steps)
        backward_at = torch.where(inside, (start + length - 1)[:, None] - steps, steps)
        forward, _ = self.forward_lstm(self.embeddings(input_ids.gather(1, forward_at)))
        backward, _ = self.backward_lstm(self.embeddings(input_ids.gather(1, backward_at)))
        return torch.cat([forward, backward], dim=-1), inside, backward_at

    def _encode(
        self, input_ids: torch.Tensor, start: torch.Tensor, length: torch.Tensor
    ) -> torch.Tensor:
        """Max-pooled BiLSTM states (batch, 2 * hidden) of the `length` tokens from `start`."""
        states, inside, _ = self._states(input_ids, start, length)
        return states.masked_fill(~inside[..., None], torch.finfo(states.dtype).min).amax(1)


class BiLSTMForSequenceClassification(BiLSTMModel):
    """Embeddings -> BiLSTM -> max-pool over real tokens -> ReLU layer -> classifier; for a
    siamese model, [h1, h2, h1 * h2, |h1 - h2|] of the two sentences' pooled states."""

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> SequenceClassifierOutput | tuple[torch.Tensor, ...]:
        """Logits (batch, num_labels), and the cross-entropy with `labels` when given. Pads
        must follow the real tokens (right padding, as BERT tokenizers do). A BiLSTM has no
        transformer hidden states: `output_hidden_states` is accepted for callers that pass
        it to any model, and none are returned."""
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        real = mask.bool()
        zero = torch.zeros_like(input_ids[:, 0])
        if self.config.siamese:
            if token_type_ids is None:
                raise ValueError("a siamese BiLSTM reads sentence pairs: pass token_type_ids")
            first = (real & (token_type_ids == 0)).sum(1)
            second = (real & (token_type_ids == 1)).sum(1)
            h1, h2 = self._encode(input_ids, zero, first), self._encode(input_ids, first, second)
            features = torch.cat([h1, h2, h1 * h2, (h1 - h2).abs()], dim=-1)
        else:
            features = self._encode(input_ids, zero, real.sum(1))
        logits = self.classifier(torch.relu(self.mlp(features)))
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels.view(-1))
        if not (return_dict if return_dict is not None else self.config.use_return_dict):
            return (logits,) if loss is None else (loss, logits)
        return SequenceClassifierOutput(loss=loss, logits=logits)


class BiLSTMForTokenClassification(BiLSTMModel):
    """Embeddings -> BiLSTM -> each token's forward and backward states -> ReLU layer ->
    classifier: one row of logits per token. Pads get logits too (of their own states,
    which no real token's depend on); labels of -100 leave them out of the loss. A tagger is
    never siamese (the kind refuses it)."""

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> TokenClassifierOutput | tuple[torch.Tensor, ...]:
        """Logits (batch, seq, num_labels), and the cross-entropy with `labels` (-100 where
        ignored) when given. Right padding, as for the classifier; `token_type_ids` and
        `output_hidden_states` are accepted and unused."""
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        states, _, backward_at = self._states(
            input_ids, torch.zeros_like(input_ids[:, 0]), mask.bool().sum(1)
        )
        width = self.config.hidden_size
        at = backward_at[..., None].expand(-1, -1, width)
        in_place = torch.cat([states[..., :width], states[..., width:].gather(1, at)], dim=-1)
        logits = self.classifier(torch.relu(self.mlp(in_place)))
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten())
        if not (return_dict if return_dict is not None else self.config.use_return_dict):
            return (logits,) if loss is None else (loss, logits)
        return TokenClassifierOutput(loss=loss, logits=logits)


BiLSTMConfig.register_for_auto_class()
BiLSTMForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
BiLSTMForTokenClassification.register_for_auto_class("AutoModelForTokenClassification")
