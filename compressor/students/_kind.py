"""The seam every student kind fills: how it is built, saved, loaded and exported, and its
adaptor, which maps one forward pass to what distillation losses may read (TextBrewer's
adaptors). The trainer, the objective and the pipeline only go through this seam, so a new
kind (a BiLSTM, a CNN) is one module in this package."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from compressor.students._capture import LayerQKV

if TYPE_CHECKING:
    # typing only: recipe validation imports the losses, which import this package
    from compressor.recipe import StudentConfig


@dataclass(frozen=True)
class Wants:
    """What the losses of a run read beyond the logits; a kind computes nothing else."""

    hidden_states: bool = False
    attentions: bool = False
    qkv: bool = False


@dataclass
class Features:
    """One forward pass as the losses see it: logits, hidden states (0 = embeddings),
    post-softmax attentions and per-layer Q/K/V, each present when asked for and when the
    kind has them."""

    logits: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    qkv: list[LayerQKV] | None = None


class StudentKind(Protocol):
    """One family of students, registered in `STUDENT_KINDS` under `name`; `provides` is
    what its adaptor can return beyond the logits, so a loss reading anything else is
    refused before training starts (`compressor.distill.objective.check_servable`)."""

    name: str
    provides: Wants

    def claims(self, config: dict[str, Any]) -> bool:
        """Whether a saved model with this config.json content is of this kind."""

    def serves(self, task: str) -> bool:
        """Whether the kind has a head for the task (`compressor.tasks`) of that name."""

    def build(
        self,
        teacher: PreTrainedModel,
        teacher_tokenizer: PreTrainedTokenizerBase,
        cfg: StudentConfig,
        samples: list[str],
    ) -> tuple[nn.Module, PreTrainedTokenizerBase]:
        """A fresh student for `teacher` and the tokenizer its inputs are built with;
        `samples` are real sentences for tokenizer checks."""

    def describe(self, model: nn.Module, cfg: StudentConfig | None = None) -> str:
        """What plans and progress lines say the student is; with `cfg`, also where it came
        from."""

    def load(self, folder: Path) -> nn.Module:
        """A trained student back from its folder."""

    def save(self, model: nn.Module, tokenizer: PreTrainedTokenizerBase, folder: Path) -> None:
        """Write what `load` and `export_onnx` need into `folder`."""

    def export_onnx(self, model_dir: Path, out_dir: Path, opset: int) -> Path:
        """Write the ONNX file (and what inference needs beside it) into `out_dir`; return
        the file's path."""

    def dims(self, model: nn.Module) -> tuple[int, int]:
        """(layers, width) of the hidden states the adaptor returns, embeddings not
        counted: what layer maps and loss projections are sized by."""

    def adapt(self, model: nn.Module, inputs: dict[str, torch.Tensor], wants: Wants) -> Features:
        """Run `model` on `inputs` (only those its forward accepts) and return `wants`."""


def accepted_inputs(model: nn.Module) -> set[str]:
    """Keyword inputs of a model's forward (of the wrapped model under DDP): a DistilBERT
    student fed by a BERT tokenizer must not receive token_type_ids."""
    return set(inspect.signature(getattr(model, "module", model).forward).parameters)
