"""A convolutional sentence classifier built of cells (AdaBERT, Chen et al. 2020,
"Task-Adaptive BERT Compression with Differentiable Neural Architecture Search"),
with the architecture fixed in its config: the cells' edges are data, so retraining, loading
and export never search.

A cell reads two inputs, the outputs of the two cells before it (node 0 the older, node 1
the newer; the first cell reads the projected embeddings twice, as AdaBERT does for one
sentence). Each edge `[op, source, target]` applies one operation to node `source` and adds
the result to node `target` (2, 3, ...); a node is the sum of its incoming edges, and the
cell's output is the mean of its intermediate nodes.

This file imports only torch and transformers: `save_pretrained` copies it beside the weights
(the config's `auto_map` names it), so `AutoModelForSequenceClassification.from_pretrained(
folder, trust_remote_code=True)` loads a trained student anywhere, without this project.

Padding never reaches a real token. Every operation's output is zeroed at the pads, so a
convolution's window over the end of a sentence sees zeros whether its batch pads it or not
(the same zeros its own zero padding supplies); max pooling sees the pads as -inf, average
pooling counts them as zeros in a window of 3, as it counts its own padding. The sentence
vector is a max over real tokens only.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

CONVOLUTIONS = {
    "conv3": (3, 1),
    "conv5": (5, 1),
    "conv7": (7, 1),
    "dil_conv3": (3, 2),
    "dil_conv5": (5, 2),
    "dil_conv7": (7, 2),
}
"""Convolution operations: (kernel width, dilation)."""
OPERATIONS = (*CONVOLUTIONS, "max_pool3", "avg_pool3", "identity", "zero")
"""Every operation an edge may name: AdaBERT's search space."""


def check_cells(cells: list[list[list]]) -> None:
    """Raise ValueError on an architecture this model cannot build: an unknown operation, or
    an edge that reads a node not computed before its target."""
    if not cells:
        raise ValueError("a CNN student needs at least one cell")
    for number, cell in enumerate(cells):
        if not cell:
            raise ValueError(f"cell {number} has no edges")
        targets = sorted({int(target) for _, _, target in cell})
        if targets != list(range(2, 2 + len(targets))):
            raise ValueError(
                f"cell {number}: edge targets {targets} must be the nodes 2, 3, ... in turn"
            )
        for op, source, target in cell:
            if op not in OPERATIONS:
                raise ValueError(
                    f"cell {number}: unknown operation {op!r} (known: {', '.join(OPERATIONS)})"
                )
            if not 0 <= int(source) < int(target):
                raise ValueError(
                    f"cell {number}: edge {op} {source} -> {target} reads a node that is not "
                    "computed before its target (inputs are 0 and 1)"
                )


class CNNConfig(PretrainedConfig):
    """Sizes and architecture of the student: `embedding_dim`-d word embeddings projected to
    `hidden_size` channels, `cells` (each a list of `[op, source, target]` edges), a ReLU
    layer of `mlp_size` and the classifier."""

    model_type = "compressor-cnn"

    def __init__(
        self,
        vocab_size: int = 30522,
        embedding_dim: int = 128,
        hidden_size: int = 128,
        mlp_size: int = 128,
        cells: list[list[list]] | None = None,
        pad_token_id: int = 0,
        **kwargs: object,
    ) -> None:
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.hidden_size = hidden_size
        self.mlp_size = mlp_size
        # lists, not tuples: what config.json gives back, so a saved config compares equal
        self.cells = [[list(edge) for edge in cell] for cell in cells or []]
        super().__init__(pad_token_id=pad_token_id, **kwargs)


class Edge(nn.Module):
    """One operation on (batch, channels, seq) states; the result is zero at the pads."""

    def __init__(self, op: str, channels: int) -> None:
        super().__init__()
        self.op = op
        if op in CONVOLUTIONS:
            width, dilation = CONVOLUTIONS[op]
            # ReLU-conv as in DARTS' ops; no batch norm (its batch statistics would mix pads
            # and other sentences into a sentence's states while training)
            self.conv = nn.Conv1d(channels, channels, width, padding=dilation * (width // 2),
                                  dilation=dilation)  # fmt: skip

    def forward(self, states: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        if self.op == "zero":
            return torch.zeros_like(states)
        if self.op == "identity":
            return states
        if self.op == "max_pool3":
            hidden = states.masked_fill(~real, torch.finfo(states.dtype).min)
            out = nn.functional.max_pool1d(hidden, 3, stride=1, padding=1)
        elif self.op == "avg_pool3":
            out = nn.functional.avg_pool1d(states, 3, stride=1, padding=1)
        else:
            out = self.conv(torch.relu(states))
        return out * real


class Cell(nn.Module):
    """Nodes 2, 3, ... each the sum of their edges; the output is their mean."""

    def __init__(self, edges: list[list], channels: int) -> None:
        super().__init__()
        self.links = [(int(source), int(target)) for _, source, target in edges]
        self.edges = nn.ModuleList(Edge(op, channels) for op, _, _ in edges)
        self.nodes = max(target for _, target in self.links) - 1

    def forward(self, older: torch.Tensor, newer: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        nodes = [older, newer]
        for target in range(2, 2 + self.nodes):
            incoming = [
                edge(nodes[source], real)
                for edge, (source, to) in zip(self.edges, self.links, strict=True)
                if to == target
            ]
            nodes.append(torch.stack(incoming).sum(0))
        return torch.stack(nodes[2:]).mean(0)


class CNNForSequenceClassification(PreTrainedModel):
    """Embeddings -> 1x1 projection -> cells -> max-pool over real tokens -> ReLU layer ->
    classifier."""

    config_class = CNNConfig
    base_model_prefix = "cnn"
    main_input_name = "input_ids"

    def __init__(self, config: CNNConfig) -> None:
        super().__init__(config)
        check_cells(config.cells)
        # named `embeddings` so parameter counts that leave embedding tables out skip it
        self.embeddings = nn.Embedding(
            config.vocab_size, config.embedding_dim, padding_idx=config.pad_token_id
        )
        self.projection = nn.Conv1d(config.embedding_dim, config.hidden_size, 1)
        self.cells = nn.ModuleList(Cell(edges, config.hidden_size) for edges in config.cells)
        self.mlp = nn.Linear(config.hidden_size, config.mlp_size)
        self.classifier = nn.Linear(config.mlp_size, config.num_labels)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        """PyTorch's own initialisation (uniform +-1/sqrt(fan)); the kind overwrites the
        embedding table with the teacher's."""
        if isinstance(module, nn.Linear | nn.Conv1d | nn.Embedding):
            module.reset_parameters()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings = value

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
        must follow the real tokens (right padding, as BERT tokenizers do): pooling windows
        would otherwise see other pads than a sentence alone. A pair is read as one sequence, so
        `token_type_ids` is unused; it and `output_hidden_states` (there are no transformer
        hidden states) are accepted for callers that pass them to any model."""
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        real = mask.bool()[:, None, :]
        states = self.projection(self.embeddings(input_ids).transpose(1, 2)) * real
        older = newer = states
        for cell in self.cells:
            older, newer = newer, cell(older, newer, real)
        features = newer.masked_fill(~real, torch.finfo(newer.dtype).min).amax(2)
        logits = self.classifier(torch.relu(self.mlp(features)))
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels.view(-1))
        if not (return_dict if return_dict is not None else self.config.use_return_dict):
            return (logits,) if loss is None else (loss, logits)
        return SequenceClassifierOutput(loss=loss, logits=logits)


CNNConfig.register_for_auto_class()
CNNForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
