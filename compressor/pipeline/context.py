"""What every stage of a run reads: the run folder, the recipe, the teacher and the task
data, loaded once and shared, so stages talk through this context and the folder rather
than through each other's functions."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from rich.console import Console

from compressor.data import TaskData, load_task_data
from compressor.recipe import Recipe
from compressor.runfolder import RunFolder

console = Console(stderr=True)


@dataclass
class RunContext:
    """One compress run as its stages see it. `run` is None only for a dry run's plan."""

    recipe: Recipe
    teacher: str
    run: RunFolder | None = None
    resume: bool = False
    skip_export: bool = False
    skip_benchmark: bool = False
    preloaded: TaskData | None = field(default=None, repr=False)
    on_evaluate: Callable[[int, float], None] | None = field(default=None, repr=False)
    """Called with (step, dev accuracy) after each evaluation while distilling: how a
    search judges a candidate mid-training and stops a weak one."""

    @property
    def mlm(self) -> bool:
        """Task-agnostic pruning: the result is a masked LM, not a classifier to ship."""
        return self.recipe.prune.enabled and self.recipe.prune.objective == "mlm"

    @property
    def homodistil(self) -> bool:
        """Pruning starts from the teacher itself, so there is no distillation stage."""
        return self.recipe.prune.enabled and self.recipe.prune.start == "teacher"

    @cached_property
    def data(self) -> TaskData:
        return self.preloaded or load_task_data(self.recipe.data, labelled=not self.mlm)

    @property
    def folder(self) -> RunFolder:
        if self.run is None:
            raise RuntimeError("a dry run has no run folder")
        return self.run

    @property
    def model_dir(self) -> Path:
        """The student as it stands after the last model-changing stage."""
        return self.folder.path / "model"


def describe_data(data: TaskData) -> dict[str, Any]:
    """How a stage records the data it trained on."""
    return {
        "source": data.source,
        "train_examples": len(data.train),
        "dev_examples": len(data.dev),
        "labels": data.label_names,
        "notes": data.notes,
    }


def size_mb(path: Path) -> float:
    """Size of a model file, or of a model folder's weight files."""
    files = (
        [path]
        if path.is_file()
        else [p for p in path.iterdir() if p.suffix in (".safetensors", ".bin", ".onnx", ".data")]
    )
    return round(sum(os.path.getsize(p) for p in files) / 2**20, 3)
