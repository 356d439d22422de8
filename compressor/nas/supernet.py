"""AdaBERT's search network: every edge of a cell mixes all ten operations, the depth is a
choice among 1..K_max, and both are sampled by a hard Gumbel-softmax, so that a step runs one
operation per edge and the architecture still gets gradients (straight-through).

The operations are the `cnn` student's own (`compressor.students.modeling_cnn.Edge`), so the
derived cell computes exactly what it computed here; the embeddings and their projection
are the student's (the teacher's word embeddings, PCA-reduced).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from compressor.students.modeling_cnn import CONVOLUTIONS, OPERATIONS, Edge

ZERO = OPERATIONS.index("zero")


def op_cost(op: str, channels: int) -> float:
    """Parameters plus FLOPs per token of one operation, the paper's SIZE(o) + FLOPs(o), in
    units of the costliest operation (a width-7 convolution) so L_E lies in [0, 1]."""

    def raw(name: str) -> float:
        if name in CONVOLUTIONS:
            width = CONVOLUTIONS[name][0]
            params = width * channels * channels + channels
            return params + 2 * width * channels * channels
        if name.endswith("pool3"):
            return 3.0 * channels  # no parameters; a few comparisons or adds per channel
        return 0.0  # identity and zero

    return raw(op) / raw("conv7")


def edge_links(nodes: int) -> list[tuple[int, int]]:
    """(source, target) of every edge of a cell: node i (2, 3, ...) reads every earlier
    node, the two inputs included (DARTS' and AdaBERT's cell)."""
    return [(source, target) for target in range(2, 2 + nodes) for source in range(target)]


def hard_gumbel(logits: torch.Tensor, tau: float, generator: torch.Generator) -> torch.Tensor:
    """One-hot samples of softmax((logits + G) / tau) along the last axis, with the soft
    sample's gradient (straight-through)."""
    uniform = torch.rand(logits.shape, generator=generator).clamp_(1e-10, 1 - 1e-10)
    uniform = uniform.to(logits.device)
    soft = F.softmax((logits - torch.log(-torch.log(uniform))) / tau, dim=-1)
    hard = F.one_hot(soft.argmax(-1), soft.shape[-1]).to(soft.dtype)
    return hard - soft.detach() + soft


class MixedEdge(nn.Module):
    """All operations of one edge; runs only the sampled one, scaled by its (1.0, but
    differentiable) weight."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.ops = nn.ModuleList(Edge(op, channels) for op in OPERATIONS)

    def forward(
        self, states: torch.Tensor, real: torch.Tensor, weights: torch.Tensor
    ) -> torch.Tensor:
        chosen = int(weights.argmax())
        return self.ops[chosen](states, real) * weights[chosen]


class SearchCell(nn.Module):
    """One layer of the search network: its own operation weights, the shared architecture."""

    def __init__(self, nodes: int, channels: int) -> None:
        super().__init__()
        self.links = edge_links(nodes)
        self.nodes = nodes
        self.edges = nn.ModuleList(MixedEdge(channels) for _ in self.links)

    def forward(
        self, older: torch.Tensor, newer: torch.Tensor, real: torch.Tensor, weights: torch.Tensor
    ) -> torch.Tensor:
        states = [older, newer]
        edges = list(enumerate(zip(self.edges, self.links, strict=True)))
        for target in range(2, 2 + self.nodes):
            incoming = [
                edge(states[source], real, weights[k])
                for k, (edge, (source, to)) in edges
                if to == target
            ]
            states.append(torch.stack(incoming).sum(0))
        return torch.stack(states[2:]).mean(0)


class SuperNet(nn.Module):
    """Embeddings -> projection -> K_max search cells, a classifier after every cell (the
    student's per-layer predictions that KD matches to the teacher's probes), and the
    sampled depth choosing which cell's prediction is the network's."""

    def __init__(
        self,
        embeddings: nn.Embedding,
        projection: nn.Conv1d,
        max_cells: int,
        nodes: int,
        num_labels: int,
    ) -> None:
        super().__init__()
        channels = projection.out_channels
        self.embeddings, self.projection = embeddings, projection
        self.cells = nn.ModuleList(SearchCell(nodes, channels) for _ in range(max_cells))
        self.heads = nn.ModuleList(nn.Linear(channels, num_labels) for _ in range(max_cells))
        links = len(self.cells[0].links)
        # the architecture: near-uniform at the start, as in DARTS (N(0, 1e-3))
        self.alpha = nn.Parameter(1e-3 * torch.randn(links, len(OPERATIONS)))
        self.depth = nn.Parameter(1e-3 * torch.randn(max_cells))
        self.register_buffer("costs", torch.tensor([op_cost(op, channels) for op in OPERATIONS]))

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alpha, self.depth]

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        tau: float,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(the sampled depth's logits, every cell's logits)."""
        real = attention_mask.bool()[:, None, :]
        states = self.projection(self.embeddings(input_ids).transpose(1, 2)) * real
        weights = hard_gumbel(self.alpha, tau, generator)
        depth = hard_gumbel(self.depth, tau, generator)
        older = newer = states
        per_cell = []
        for cell, head in zip(self.cells, self.heads, strict=True):
            older, newer = newer, cell(older, newer, real, weights)
            pooled = newer.masked_fill(~real, torch.finfo(newer.dtype).min).amax(2)
            per_cell.append(head(pooled))
        logits = (torch.stack(per_cell, -1) * depth).sum(-1)
        return logits, per_cell

    def efficiency(self) -> torch.Tensor:
        """L_E: the expected depth's share of K_max times the expected cost of an edge's
        operation, under the architecture's softmax; 0 (all identity / zero, one cell) to 1."""
        p_depth = F.softmax(self.depth, -1)
        cells = (p_depth * torch.arange(1, len(p_depth) + 1, dtype=p_depth.dtype)).sum()
        edge_cost = (F.softmax(self.alpha, -1) * self.costs).sum(-1).mean()
        return cells / len(p_depth) * edge_cost

    def derive(self) -> tuple[list[list[list]], int]:
        """The discrete architecture: each edge's strongest operation, zero edges dropped
        (a node left without an edge keeps its strongest non-zero one), and the strongest
        depth. Returns (one cell's edges, K)."""
        cell: list[list] = []
        alpha = self.alpha.detach()
        links = self.cells[0].links
        for target in sorted({to for _, to in links}):
            mine = [k for k, (_, to) in enumerate(links) if to == target]
            kept = [k for k in mine if int(alpha[k].argmax()) != ZERO]
            if not kept:
                nonzero = alpha[mine].clone()
                nonzero[:, ZERO] = float("-inf")
                kept = [mine[int(nonzero.max(1).values.argmax())]]
            for k in kept:
                scores = alpha[k].clone()
                scores[ZERO] = float("-inf")
                cell.append([OPERATIONS[int(scores.argmax())], links[k][0], target])
        return cell, int(self.depth.detach().argmax()) + 1
