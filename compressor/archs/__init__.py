"""Architecture specs, one module per family: the one place that knows module layouts.

Each module registers an `ArchSpec` under its family name; `arch_of` finds the spec of a
model, a config or a bare `model_type`. MiniLM checkpoints are `bert` models and share its
spec. Adding a BERT-like family is one new module here plus a test.
"""

from __future__ import annotations

from typing import Any

from compressor.archs._spec import ArchSpec, Part, resolve
from compressor.errors import UserError
from compressor.registry import ARCHITECTURES

__all__ = ["ArchSpec", "Part", "arch_of", "heads_per_layer", "resolve", "supported_types"]


def _specs() -> list[ArchSpec]:
    return [spec for _, spec in ARCHITECTURES.items() if isinstance(spec, ArchSpec)]


def supported_types(*, prunable: bool = False) -> list[str]:
    """Every `model_type` some spec covers (only those structured pruning supports, with
    `prunable`), in registry order."""
    return [t for spec in _specs() if spec.prunable or not prunable for t in spec.model_types]


def _model_type(source: Any) -> str | None:
    if isinstance(source, str):
        return source
    if isinstance(source, dict):
        return source.get("model_type")
    config = getattr(source, "config", source)
    return getattr(config, "model_type", None)


def arch_of(source: Any) -> ArchSpec:
    """The spec of a model, a config (object or config.json dict) or a `model_type`; a
    UserError naming the supported types for anything else."""
    model_type = _model_type(source)
    for spec in _specs():
        if model_type in spec.model_types:
            return spec
    supported = ", ".join(supported_types())
    if model_type is None:
        raise UserError(
            f"{type(source).__name__} has no config.model_type, so its layout is unknown — "
            f"pass a Hugging Face model of a supported architecture: {supported}"
        )
    raise UserError(f"architecture {model_type!r} is not supported yet — supported: {supported}")


def heads_per_layer(model: Any) -> list[int]:
    """Attention heads each encoder layer keeps (uneven after head pruning)."""
    spec = arch_of(model)
    return [spec.heads_of(layer) for layer in spec.encoder_layers(model)]
