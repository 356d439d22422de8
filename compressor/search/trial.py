"""One candidate, as a compress run folder of its own: the chain's training and file stages
(judged at each evaluation), then its shippable file scored on the whole dev set and timed
beside the teacher's. The folder is named by the candidate's recipe hash and locked while a
worker trains it, so a repeated candidate costs nothing and a killed one resumes."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import optuna
from filelock import FileLock

from compressor.data import TaskData
from compressor.models import resolve_model_dir
from compressor.pipeline.artifacts import Artifact, run_artifacts
from compressor.pipeline.chain import run_stages
from compressor.pipeline.context import RunContext, size_mb
from compressor.recipe import Recipe
from compressor.runfolder import STATE, RunFolder
from compressor.search.speed import SearchTarget, measure_speed

TRIAL_STAGES = ("adabert", "distill", "prune", "vocab", "export", "quantize")
RESULT = "candidate"
SHIPPABLE_ORDER = ("student_optimized", "student_onnx")  # after the quantized file


@dataclass(frozen=True)
class Baseline:
    """What every candidate is compared with, made once per search."""

    teacher: str
    teacher_onnx: Path
    teacher_int8: Path | None
    teacher_accuracy: float
    data: TaskData
    target: SearchTarget
    lengths: list[int] | None
    """The dev sentences' token counts under the teacher's tokenizer, for `--seq-len dev`:
    counted once, so every candidate and the teacher are timed on the same workload."""


@dataclass(frozen=True)
class Outcome:
    """A finished candidate: its file, dev accuracy, drop in points, size and speed, and the
    trial that trained it."""

    trial: int
    folder: str
    file: str
    label: str
    dev_accuracy: float
    drop: float
    size_mb: float
    speed: dict[str, Any]
    train_seconds: float

    @property
    def speedup(self) -> float:
        """Times faster than the teacher's own int8 file (its ONNX file when it has none)."""
        return self.speed["vs_teacher_int8"] or self.speed["vs_teacher"]


def run_candidate(
    base: Baseline,
    recipe: Recipe,
    trials_dir: Path,
    on_evaluate: Callable[[int, float], None] | None,
    trial: int,
) -> Outcome:
    """Train, export, score and time one candidate as `trial`, or read what an earlier trial
    of the same recipe recorded (its `trial` then says which)."""
    folder = trials_dir / recipe.hash()
    trials_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        resume = (folder / STATE).is_file()
        run = RunFolder.create(folder, "compress", recipe, overwrite=False, resume=resume)
        if not run.done(RESULT):
            ctx = RunContext(
                recipe,
                base.teacher,
                run,
                resume=resume,
                skip_benchmark=True,
                preloaded=base.data,
                on_evaluate=on_evaluate,
            )
            try:
                run_stages(ctx, TRIAL_STAGES)
            except optuna.TrialPruned:  # final: its checkpoints would only hold disk space
                shutil.rmtree(folder / "training", ignore_errors=True)
                raise
            _score(base, run, recipe, trial)
            run.drop_training()
        return Outcome(folder=str(folder), **run.result(RESULT))


def shippable(arts: dict[str, Artifact]) -> Artifact:
    """The file a run ships: its quantized file, else the optimized one, else the ONNX one."""
    quantized = [k for k in arts if k.startswith("student_") and k not in SHIPPABLE_ORDER]
    return arts[next(k for k in [*quantized, *SHIPPABLE_ORDER] if k in arts)]


def _score(base: Baseline, run: RunFolder, recipe: Recipe, trial: int) -> None:
    from exporters.artifacts import record_dev_accuracy

    shipped = shippable(run_artifacts(run, base.teacher))
    dev, max_length = base.data.dev, recipe.data.max_length
    accuracy = record_dev_accuracy(shipped.path, dev, max_length=max_length)["dev_accuracy"]
    speed = measure_speed(
        base.target,
        teacher_dir=Path(resolve_model_dir(base.teacher)),
        teacher_onnx=base.teacher_onnx,
        teacher_int8=base.teacher_int8,
        candidate_dir=run.path / "model",
        candidate=shipped.path,
        lengths=base.lengths,
    )
    run.complete(
        RESULT,
        trial=trial,
        file=str(shipped.path),
        label=shipped.label,
        dev_accuracy=accuracy,
        drop=round(100 * (base.teacher_accuracy - accuracy), 3),
        size_mb=size_mb(shipped.path),
        speed=asdict(speed),
        train_seconds=float(run.result("distill").get("train_seconds", 0.0)),
    )
