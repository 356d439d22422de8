"""The structured units of a BERT-family classifier, their sensitivity and their masks.

Three kinds of unit: attention heads and FFN neurons (per layer), and hidden dimensions (one
set shared by every layer, since the residual stream ties them together). A unit is masked
with forward hooks, never by editing the model, and each mask is placed so that the masked
model computes exactly what the physically smaller model will (`shrink.py`):

- a head: its slice of the context vector is zeroed before the attention output dense, which
  is what removing its Q/K/V rows and its output-dense columns computes;
- an FFN neuron: zeroed before the FFN output dense (its rows and columns removed);
- a hidden dimension: every LayerNorm is recomputed over the kept dimensions only (mean and
  variance of the smaller model) and outputs zeros elsewhere, and the classifier's square
  dense (pooler / RoBERTa head) is zeroed there before its tanh.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel

from compressor.archs import ArchSpec, arch_of, supported_types
from compressor.errors import UserError

KINDS = ("heads", "ffn", "hidden")


@dataclass
class Layout:
    """Where one model keeps the modules pruning touches: a sequence classifier (pooler /
    classification head) or a masked LM (prediction head, output tied to the embeddings).
    Inside a layer, modules are found through the architecture spec `arch`."""

    arch: ArchSpec
    embeddings: nn.Module
    layers: list[nn.Module]
    square: list[nn.Linear]
    head_norms: list[nn.LayerNorm]
    out: nn.Linear
    out_tied: bool
    num_heads: int
    head_dim: int
    ffn: int
    hidden: int

    @property
    def layer_norms(self) -> list[nn.LayerNorm]:
        arch = self.arch
        norms = [getattr(self.embeddings, arch.embedding_norm)]
        for layer in self.layers:
            norms += [arch.part(layer, "attention_norm"), arch.part(layer, "ffn_norm")]
        return norms + self.head_norms

    @property
    def embedding_tables(self) -> list[nn.Embedding]:
        return [getattr(self.embeddings, name) for name in self.arch.embedding_tables]

    def qkv(self, layer: nn.Module) -> list[nn.Linear]:
        return [self.arch.part(layer, name) for name in ("query", "key", "value")]

    def sizes(self) -> dict[str, int]:
        """Full size of each kind of unit (per layer for heads and FFN)."""
        return {"heads": self.num_heads, "ffn": self.ffn, "hidden": self.hidden}


def layout_of(model: PreTrainedModel) -> Layout:
    """The layout of a classifier or masked LM whose architecture spec is prunable; others
    are refused by name."""
    config = model.config
    prunable = supported_types(prunable=True)
    if config.model_type not in prunable:
        raise UserError(
            f"pruning supports {', '.join(prunable)} models, not {config.model_type!r} — "
            "distil into a BERT student first, or compress without the prune stage"
        )
    arch = arch_of(model)
    base = model.base_model
    square = [base.pooler.dense] if getattr(base, "pooler", None) is not None else []
    head_norms: list[nn.LayerNorm] = []
    classifier = getattr(model, "classifier", None)
    if classifier is None:  # masked LM: dense -> activation -> LayerNorm -> tied decoder
        lm = model.cls.predictions.transform if hasattr(model, "cls") else model.lm_head
        square.append(lm.dense)
        head_norms.append(lm.LayerNorm if hasattr(lm, "LayerNorm") else lm.layer_norm)
        out = model.get_output_embeddings()
    elif isinstance(classifier, nn.Linear):
        out = classifier
    else:
        square.append(classifier.dense)
        out = classifier.out_proj
    layers = arch.encoder_layers(model)
    return Layout(
        arch=arch,
        embeddings=arch.embedding_module(model),
        layers=layers,
        square=square,
        head_norms=head_norms,
        out=out,
        out_tied=out.weight is model.get_input_embeddings().weight,
        num_heads=arch.heads_of(layers[0]),
        head_dim=arch.head_size_of(layers[0]),
        ffn=arch.part(layers[0], "ffn_in").out_features,
        hidden=config.hidden_size,
    )


def _has_bias(linear: nn.Linear) -> int:
    return int(linear.bias is not None)


def _norm_vectors(norm: nn.LayerNorm) -> int:
    """How many width-long vectors a LayerNorm holds (weight and bias, when present)."""
    return int(norm.weight is not None) + int(norm.bias is not None)


def non_embedding_parameters(layout: Layout, hidden: int, heads: int, ffn: int) -> int:
    """What `count_parameters(model, embeddings=False)` will report once the model is cut
    to width `hidden` with `heads` attention heads and `ffn` FFN neurons in all (summed over
    layers, so per-layer counts may differ). Read off the layout, not off a cut copy, so a
    budget can be solved for before anything is removed; at a fixed width it is linear in
    `heads` and `ffn`, which is what the solve relies on."""
    first, part = layout.layers[0], layout.arch.part
    qkv_bias = sum(_has_bias(m) for m in layout.qkv(first))
    per_head = layout.head_dim * (4 * hidden + qkv_bias)
    per_neuron = 2 * hidden + _has_bias(part(first, "ffn_in"))
    per_layer = hidden * (
        _has_bias(part(first, "attention_out"))
        + _has_bias(part(first, "ffn_out"))
        + _norm_vectors(part(first, "attention_norm"))
        + _norm_vectors(part(first, "ffn_norm"))
    )
    head = sum(hidden * (hidden + _has_bias(dense)) for dense in layout.square)
    head += sum(hidden * _norm_vectors(norm) for norm in layout.head_norms)
    out = layout.out
    # a decoder tied to the word embeddings is counted there: only its bias is left here
    head += out.out_features * (_has_bias(out) + (0 if layout.out_tied else hidden))
    return heads * per_head + ffn * per_neuron + len(layout.layers) * per_layer + head


def _saliency(param: torch.Tensor) -> torch.Tensor:
    """|theta * grad| elementwise (zeros before the first backward)."""
    if param.grad is None:
        return torch.zeros_like(param)
    return (param.detach() * param.grad.detach()).abs()


def _linear_rows(linear: nn.Linear) -> torch.Tensor:
    """Saliency summed per output unit (row of the weight, plus its bias)."""
    rows = _saliency(linear.weight).sum(1)
    return rows + _saliency(linear.bias) if linear.bias is not None else rows


def sensitivity(layout: Layout, kind: str) -> torch.Tensor:
    """Per-unit sum of |theta * grad| over every weight the unit owns, from the current grads:
    shape (layers, heads), (layers, ffn) or (hidden,)."""
    part = layout.arch.part
    with torch.no_grad():
        if kind == "heads":
            per_layer = []
            for layer in layout.layers:
                rows = sum(_linear_rows(m) for m in layout.qkv(layer))
                cols = _saliency(part(layer, "attention_out").weight).sum(0)
                per_layer.append((rows + cols).view(layout.num_heads, layout.head_dim).sum(1))
            return torch.stack(per_layer).float().cpu()
        if kind == "ffn":
            return (
                torch.stack(
                    [
                        _linear_rows(part(layer, "ffn_in"))
                        + _saliency(part(layer, "ffn_out").weight).sum(0)
                        for layer in layout.layers
                    ]
                )
                .float()
                .cpu()
            )
        return _hidden_sensitivity(layout).float().cpu()


def _hidden_sensitivity(layout: Layout) -> torch.Tensor:
    """A hidden dimension owns a column of every embedding table and of every matrix that
    reads the residual stream, a row (and bias entry) of every matrix that writes it, and
    its LayerNorm entries. A decoder tied to the word embeddings is counted once, there."""
    total = sum(_saliency(table.weight).sum(0) for table in layout.embedding_tables)
    for norm in layout.layer_norms:
        total = total + _saliency(norm.weight) + _saliency(norm.bias)
    readers = [*layout.square] + ([] if layout.out_tied else [layout.out])
    writers = list(layout.square)
    part = layout.arch.part
    for layer in layout.layers:
        readers += [*layout.qkv(layer), part(layer, "ffn_in")]
        writers += [part(layer, "attention_out"), part(layer, "ffn_out")]
    for linear in readers:
        total = total + _saliency(linear.weight).sum(0)
    for linear in writers:
        total = total + _linear_rows(linear)
    return total


def masked_layer_norm(x: torch.Tensor, norm: nn.LayerNorm, mask: torch.Tensor) -> torch.Tensor:
    """LayerNorm over the kept dimensions only, zero on the others: what a LayerNorm of the
    smaller width computes."""
    kept = mask.sum()
    mean = (x * mask).sum(-1, keepdim=True) / kept
    var = (((x - mean) * mask) ** 2).sum(-1, keepdim=True) / kept
    y = (x - mean) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias
    return y * mask


class UnitMasks:
    """0/1 masks of every unit kind: `heads` (layers, heads), `ffn` (layers, ffn),
    `hidden` (hidden,). Kinds not being pruned get no mask and no hooks."""

    def __init__(self, layout: Layout, kinds: tuple[str, ...]):
        n = len(layout.layers)
        full = {
            "heads": torch.ones(n, layout.num_heads),
            "ffn": torch.ones(n, layout.ffn),
            "hidden": torch.ones(layout.hidden),
        }
        self.masks = {kind: full[kind] for kind in kinds}

    def kept(self) -> dict[str, list[int] | int]:
        """Units kept: per layer for heads / FFN, one count for hidden."""
        return {
            kind: int(m.sum()) if kind == "hidden" else [int(r.sum()) for r in m]
            for kind, m in self.masks.items()
        }

    @contextmanager
    def applied(self, layout: Layout) -> Iterator[None]:
        """Hooks that make the model compute as if the masked units were removed."""
        handles = []

        def scale(mask: torch.Tensor, repeat: int = 1):
            def hook(_module: nn.Module, args: tuple) -> tuple:
                m = mask.repeat_interleave(repeat) if repeat > 1 else mask
                return (args[0] * m.to(args[0]), *args[1:])

            return hook

        part = layout.arch.part
        if "heads" in self.masks:
            for layer, mask in zip(layout.layers, self.masks["heads"], strict=True):
                handles.append(
                    part(layer, "attention_out").register_forward_pre_hook(
                        scale(mask, layout.head_dim)
                    )
                )
        if "ffn" in self.masks:
            for layer, mask in zip(layout.layers, self.masks["ffn"], strict=True):
                handles.append(part(layer, "ffn_out").register_forward_pre_hook(scale(mask)))
        if "hidden" in self.masks:
            hidden = self.masks["hidden"]

            def norm_hook(module: nn.Module, args: tuple, _out: torch.Tensor) -> torch.Tensor:
                return masked_layer_norm(args[0], module, hidden.to(args[0]))

            def square_hook(_module: nn.Module, _args: tuple, out: torch.Tensor) -> torch.Tensor:
                return out * hidden.to(out)

            handles += [norm.register_forward_hook(norm_hook) for norm in layout.layer_norms]
            handles += [dense.register_forward_hook(square_hook) for dense in layout.square]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
