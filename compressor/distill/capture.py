"""Query / key / value projections of every self-attention layer, read with forward hooks.

HF models return hidden states and post-softmax attentions but not the pre-softmax scores
(TinyBERT's attention loss) or the values (MiniLM's value relation). Hooks on the Q/K/V
linear layers read them without editing or subclassing the model, so students stay plain
HF models. The layer layout is found by module name, which covers the BERT family:
BERT / RoBERTa / ELECTRA / MiniLM (`attention.self.query`) and DistilBERT
(`attention.q_lin`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from compressor.errors import UserError

QKV_NAME = re.compile(r"\.layer\.(\d+)\.attention\.(?:self\.)?(query|key|value|q_lin|k_lin|v_lin)$")
ROLE = {"query": "q", "q_lin": "q", "key": "k", "k_lin": "k", "value": "v", "v_lin": "v"}


@dataclass
class LayerQKV:
    """One layer's projections, split into heads: each (batch, heads, seq, head_dim)."""

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor


def qkv_modules(model: nn.Module) -> list[dict[str, nn.Module]]:
    """Per encoder layer, its q / k / v linear modules, in layer order."""
    layers: dict[int, dict[str, nn.Module]] = {}
    for name, module in model.named_modules():
        match = QKV_NAME.search(name)
        if match:
            layers.setdefault(int(match.group(1)), {})[ROLE[match.group(2)]] = module
    if not layers or any(len(roles) != 3 for roles in layers.values()):
        raise UserError(
            f"{type(model).__name__}: no query/key/value projections found — the attention "
            "losses on scores and values support BERT-family layouts only"
        )
    return [layers[i] for i in sorted(layers)]


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    batch, seq, width = x.shape
    return x.view(batch, seq, heads, width // heads).transpose(1, 2)


@contextmanager
def capture_qkv(model: nn.Module, heads: int) -> Iterator[list[LayerQKV]]:
    """Within the block, forward passes of `model` fill the yielded list, one entry per
    layer (cleared at entry; hooks removed at exit even on error)."""
    layers = qkv_modules(model)
    raw: list[dict[str, torch.Tensor]] = [{} for _ in layers]
    out: list[LayerQKV] = []

    def hook(index: int, role: str):
        def save(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            raw[index][role] = output
            if len(raw[index]) == 3:
                parts = {r: _split_heads(t, heads) for r, t in raw[index].items()}
                out.append(LayerQKV(**parts))
                raw[index] = {}

        return save

    handles = [
        module.register_forward_hook(hook(i, role))
        for i, roles in enumerate(layers)
        for role, module in roles.items()
    ]
    try:
        yield out
    finally:
        for handle in handles:
            handle.remove()
