"""Query / key / value projections of every self-attention layer, read with forward hooks.

HF models return hidden states and post-softmax attentions but not the pre-softmax scores
(TinyBERT's attention loss) or the values (MiniLM's value relation). Hooks on the Q/K/V
linear layers read them without editing or subclassing the model, so students stay plain
HF models. The architecture spec names the projections and each layer's head count (which
head pruning can make uneven), so every family with a spec is covered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from compressor.archs import arch_of, supported_types
from compressor.errors import UserError

ROLES = ("q", "k", "v")


@dataclass
class LayerQKV:
    """One layer's projections, split into heads: each (batch, heads, seq, head_dim)."""

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor


def _unwrapped(model: nn.Module) -> nn.Module:
    """The model under a DDP wrapper, which carries neither config nor layers."""
    return getattr(model, "module", model)


def qkv_modules(model: nn.Module) -> list[dict[str, nn.Module]]:
    """Per encoder layer, its q / k / v linear modules, in layer order."""
    model = _unwrapped(model)
    try:
        spec = arch_of(model)
    except UserError as exc:
        raise UserError(
            f"{type(model).__name__}: no query/key/value projections found — the attention "
            f"losses on scores and values support {', '.join(supported_types())} only"
        ) from exc
    return [
        dict(zip(ROLES, (spec.part(layer, p) for p in ("query", "key", "value")), strict=True))
        for layer in spec.encoder_layers(model)
    ]


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    batch, seq, width = x.shape
    return x.view(batch, seq, heads, width // heads).transpose(1, 2)


@contextmanager
def capture_qkv(model: nn.Module) -> Iterator[list[LayerQKV]]:
    """Within the block, forward passes of `model` fill the yielded list, one entry per
    layer (cleared at entry; hooks removed at exit even on error)."""
    layers = qkv_modules(model)
    spec = arch_of(_unwrapped(model))
    heads = [spec.heads_of(layer) for layer in spec.encoder_layers(_unwrapped(model))]
    raw: list[dict[str, torch.Tensor]] = [{} for _ in layers]
    out: list[LayerQKV] = []

    def hook(index: int, role: str) -> Callable[[nn.Module, object, torch.Tensor], None]:
        def save(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            raw[index][role] = output
            if len(raw[index]) == len(ROLES):
                parts = {r: _split_heads(t, heads[index]) for r, t in raw[index].items()}
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
