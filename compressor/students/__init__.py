"""Student kinds: what a student is, how it is built from a teacher, saved, loaded,
exported, and read by the distillation losses.

Each kind is one module of this package registered in `STUDENT_KINDS` (`transformer`,
`bilstm`, `cnn`); everything else asks for a kind by the recipe's name (`make_student`) or by
what a saved folder holds (`kind_of`), never by type checks of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn
from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

from compressor.errors import UserError
from compressor.models import resolve_model_dir
from compressor.registry import STUDENT_KINDS
from compressor.students._capture import LayerQKV, capture_qkv, qkv_modules
from compressor.students._kind import Features, StudentKind, Wants, accepted_inputs
from compressor.students._layers import LayerChoice, init_layers, uniform_layers

if TYPE_CHECKING:
    # typing only: recipe validation imports the losses, which import this package
    from compressor.recipe import StudentConfig

__all__ = [
    "DEFAULT_KIND",
    "Features",
    "LayerChoice",
    "LayerQKV",
    "StudentKind",
    "Wants",
    "accepted_inputs",
    "capture_qkv",
    "init_layers",
    "kind_named",
    "kind_of",
    "load_trained",
    "make_student",
    "qkv_modules",
    "uniform_layers",
]

DEFAULT_KIND = "transformer"


def kind_named(name: str) -> StudentKind:
    """The registered kind, or a UserError listing the known ones."""
    return STUDENT_KINDS.get(name)


def make_student(
    teacher: PreTrainedModel,
    teacher_tokenizer: PreTrainedTokenizerBase,
    cfg: StudentConfig,
    samples: list[str],
) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    """The recipe's student for `teacher` and the tokenizer its inputs are built with."""
    kind = kind_named(cfg.kind)
    return kind.build(teacher, teacher_tokenizer, cfg, samples)


def _config_of(source: str | Path | nn.Module) -> dict[str, Any]:
    if isinstance(source, nn.Module):
        config = getattr(source, "module", source).config
        return config.to_dict() if hasattr(config, "to_dict") else dict(vars(config))
    model_dir = resolve_model_dir(source)
    try:
        return PretrainedConfig.get_config_dict(model_dir)[0]
    except OSError as exc:
        raise UserError(
            f"could not read the config of {source} ({exc.__class__.__name__}) — check the id "
            "or folder; this machine may be offline"
        ) from exc


def kind_of(source: str | Path | nn.Module) -> StudentKind:
    """The kind of a model, or of a saved one (run folder, model folder or hub id). Kinds
    with their own config formats are asked first; `transformer` takes any other HF model."""
    config = _config_of(source)
    kinds = sorted(STUDENT_KINDS.items(), key=lambda item: item[0] == DEFAULT_KIND)
    for _name, kind in kinds:
        if kind.claims(config):
            return kind
    what = type(source).__name__ if isinstance(source, nn.Module) else str(source)
    raise UserError(
        f"{what} is of no known student kind (known: {', '.join(STUDENT_KINDS.names())}) — "
        "pass a Hugging Face model without custom code, or a folder saved by one of these kinds"
    )


def load_trained(folder: str | Path) -> nn.Module:
    """A trained student back from disk, by whatever kind saved it."""
    return kind_of(folder).load(Path(folder))
