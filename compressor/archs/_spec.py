"""The shape every architecture spec fills in, and the few reads that follow from it.

A spec is data, not code: dotted attribute paths into a Hugging Face model, like optimum's
normalized configs. Pruning, Q/K/V capture, student cutting and the ONNX optimizer all ask
a spec instead of spelling BERT's module names, so a new layout is one new spec module.
torch is only named for type checking, so code that handles ONNX files alone can ask a
spec (the optimizer's model type) without loading it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from torch import nn

Part = Literal[
    "query",
    "key",
    "value",
    "attention_out",
    "attention_norm",
    "ffn_in",
    "ffn_out",
    "ffn_norm",
]


def resolve(root: Any, path: str) -> Any:
    """The attribute at dotted `path` under `root` ("" is `root` itself)."""
    return reduce(getattr, path.split("."), root) if path else root


@dataclass(frozen=True)
class ArchSpec:
    """Where one family of encoders keeps what the toolchain reads or edits.

    `layers` and `embeddings` are paths from `model.base_model`; the parts (`query` ...
    `ffn_norm`), `heads` and `head_size` are paths inside one encoder layer, the embedding
    tables and norm inside the embeddings module. `heads` is read per layer rather than from
    the config because head pruning leaves layers with different counts.
    """

    name: str
    model_types: tuple[str, ...]
    layers: str
    embeddings: str
    embedding_tables: tuple[str, ...]
    embedding_norm: str
    query: str
    key: str
    value: str
    attention_out: str
    attention_norm: str
    ffn_in: str
    ffn_out: str
    ffn_norm: str
    heads: str
    head_size: str
    ort_model_type: str = "bert"
    prunable: bool = False

    def encoder_layers(self, model: nn.Module) -> list[nn.Module]:
        """The encoder layers of a model (a task model or its bare base model), in order."""
        return list(resolve(getattr(model, "base_model", model), self.layers))

    def embedding_module(self, model: nn.Module) -> nn.Module:
        return resolve(getattr(model, "base_model", model), self.embeddings)

    def part(self, layer: nn.Module, name: Part) -> nn.Module:
        """One named module of an encoder layer, e.g. `part(layer, "query")`."""
        return resolve(layer, getattr(self, name))

    def replace_part(self, layer: nn.Module, name: Part, module: nn.Module) -> None:
        """Put `module` where the named part of `layer` sits (pruning swaps in smaller ones)."""
        parent, _, attr = getattr(self, name).rpartition(".")
        setattr(resolve(layer, parent), attr, module)

    def heads_of(self, layer: nn.Module) -> int:
        return int(resolve(layer, self.heads))

    def head_size_of(self, layer: nn.Module) -> int:
        return int(resolve(layer, self.head_size))
