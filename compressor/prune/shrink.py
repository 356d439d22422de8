"""Physical removal of masked units: the masked model becomes a plain, smaller HF model.

Heads go through `transformers`' own `prune_heads` (recorded in `config.pruned_heads`, so
`from_pretrained` rebuilds the same shapes); FFN neurons and hidden dimensions are sliced
out of every matrix that holds them and the config's sizes are rewritten. The result loads
with stock `transformers` and exports with the normal ONNX exporter.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.pytorch_utils import prune_linear_layer

from compressor.archs import Part
from compressor.prune.units import Layout, UnitMasks


def _kept(mask: torch.Tensor) -> torch.Tensor:
    return mask.nonzero().flatten()


def _slice_embedding(table: nn.Embedding, index: torch.Tensor) -> None:
    table.weight = nn.Parameter(table.weight.detach()[:, index].clone())
    table.embedding_dim = len(index)


def _slice_norm(norm: nn.LayerNorm, index: torch.Tensor) -> nn.LayerNorm:
    smaller = nn.LayerNorm(len(index), eps=norm.eps).to(norm.weight)
    with torch.no_grad():
        smaller.weight.copy_(norm.weight[index])
        smaller.bias.copy_(norm.bias[index])
    return smaller


def _cut_part(layout: Layout, layer: nn.Module, name: Part, index: torch.Tensor, dim: int) -> None:
    """Keep only `index` along `dim` of the layer's linear `name` (0: its outputs, 1: its
    inputs)."""
    layout.arch.replace_part(
        layer, name, prune_linear_layer(layout.arch.part(layer, name), index, dim)
    )


def shrink_ffn(layout: Layout, mask: torch.Tensor) -> int:
    """Cut the masked FFN neurons; every layer must keep the same count, because a stock
    BERT config has one `intermediate_size`."""
    counts = {int(row.sum()) for row in mask}
    if len(counts) != 1:
        raise ValueError(f"FFN sizes differ between layers ({sorted(counts)}); keep them equal")
    for layer, row in zip(layout.layers, mask, strict=True):
        _cut_part(layout, layer, "ffn_in", _kept(row), dim=0)
        _cut_part(layout, layer, "ffn_out", _kept(row), dim=1)
    return counts.pop()


def shrink_hidden(layout: Layout, mask: torch.Tensor) -> int:
    """Cut masked hidden dimensions from the embeddings, every reader and writer of the
    residual stream, every LayerNorm and the classifier."""
    index = _kept(mask)
    arch, emb = layout.arch, layout.embeddings
    for table in layout.embedding_tables:
        _slice_embedding(table, index)
    setattr(emb, arch.embedding_norm, _slice_norm(getattr(emb, arch.embedding_norm), index))
    for layer in layout.layers:
        for name in ("query", "key", "value", "ffn_in"):
            _cut_part(layout, layer, name, index, dim=1)
        for name in ("attention_out", "ffn_out"):
            _cut_part(layout, layer, name, index, dim=0)
        for name in ("attention_norm", "ffn_norm"):
            arch.replace_part(layer, name, _slice_norm(arch.part(layer, name), index))
    return len(index)


def _replace(model: PreTrainedModel, old: nn.Module, new: nn.Module) -> None:
    """Put `new` where `old` sits in the module tree."""
    name = next(n for n, m in model.named_modules() if m is old)
    parent, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent), attr, new)


def _shrink_head(model: PreTrainedModel, layout: Layout, index: torch.Tensor) -> None:
    """The square denses (pooler, classification or LM head) lose both sides, the head's
    LayerNorm its entries, the output layer its inputs; a decoder tied to the word
    embeddings is tied again to the sliced table."""
    for dense in layout.square:
        _replace(model, dense, prune_linear_layer(prune_linear_layer(dense, index, 1), index, 0))
    for norm in layout.head_norms:
        _replace(model, norm, _slice_norm(norm, index))
    if layout.out_tied:
        model.tie_weights()
        layout.out.in_features = len(index)
    else:
        _replace(model, layout.out, prune_linear_layer(layout.out, index, dim=1))


def shrink(model: PreTrainedModel, layout: Layout, masks: UnitMasks) -> PreTrainedModel:
    """Remove every masked unit from `model` in place and make its config describe the
    result; returns the model."""
    config = model.config
    m = masks.masks
    if "ffn" in m:
        config.intermediate_size = shrink_ffn(layout, m["ffn"])
    heads_kept = [layout.num_heads] * len(layout.layers)
    if "heads" in m:
        removed = {
            i: [int(h) for h in (row == 0).nonzero().flatten()] for i, row in enumerate(m["heads"])
        }
        model.prune_heads({i: heads for i, heads in removed.items() if heads})
        heads_kept = [int(row.sum()) for row in m["heads"]]
    if "hidden" in m and int(m["hidden"].sum()) < layout.hidden:
        index = _kept(m["hidden"])
        width = shrink_hidden(layout, m["hidden"])
        _shrink_head(model, layout, index)
        # A stock config derives the head size as hidden_size / num_attention_heads, so the
        # head count is rewritten to keep it; each layer then prunes down to what it kept.
        per_config = width // layout.head_dim
        if max(heads_kept) > per_config:
            raise ValueError(
                f"a layer keeps {max(heads_kept)} heads; width {width} fits {per_config}"
            )
        config.hidden_size = width
        config.num_attention_heads = per_config
        config.pruned_heads = {
            i: list(range(kept, per_config))
            for i, kept in enumerate(heads_kept)
            if kept < per_config
        }
    return model
