"""A run lives in one folder; `state.json` says which stages are complete and what they
measured, so `--resume` skips finished stages and `report` can be rebuilt at any time."""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from compressor import atomic
from compressor.errors import UserError
from compressor.recipe import Recipe, load_recipe

STATE = "state.json"
RECIPE = "recipe.yaml"


class RunFolder:
    """The folder of one `finetune` or `compress` run and its stage bookkeeping."""

    def __init__(self, path: Path, state: dict[str, Any]):
        self.path = Path(path)
        self.state = state

    @classmethod
    def create(
        cls, path: Path, kind: str, recipe: Recipe, *, overwrite: bool, resume: bool
    ) -> RunFolder:
        """Refuse to mix two runs in one folder unless asked to replace or continue."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise UserError(f"output {path} is a file — pass a folder path with --out")
        occupied = path.is_dir() and any(path.iterdir())
        if occupied and not (path / STATE).is_file():
            raise UserError(
                f"output folder {path} holds files that are not a compressor run — choose a new "
                "or empty folder (it is never deleted for you)"
            )
        if occupied and resume:
            run = cls.open(path)
            if run.state.get("kind") != kind:
                raise UserError(
                    f"{path} holds a {run.state.get('kind')} run, not a {kind} run — "
                    "pass another --out"
                )
            if run.state.get("recipe_hash") != recipe.hash():
                raise UserError(
                    f"{path} was started with a different recipe — resume with the same "
                    f"recipe and flags (see {path / RECIPE}) or pass --overwrite"
                )
            return run
        if occupied and not overwrite:
            raise UserError(
                f"output folder {path} already holds files — pass --overwrite to replace them "
                "or --resume to continue that run"
            )
        if occupied:
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        run = cls(
            path,
            {
                "kind": kind,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "recipe_hash": recipe.hash(),
                "stages": {},
            },
        )
        atomic.write_text(path / RECIPE, recipe.to_yaml())
        run.save()
        return run

    @classmethod
    def open(cls, path: Path) -> RunFolder:
        path = Path(path)
        if not (path / STATE).is_file():
            raise UserError(
                f"{path} is not a compressor run folder (no {STATE}) — pass the --out folder "
                "of a finetune or compress run"
            )
        atomic.recover_under(path)  # a folder swap a crash interrupted, before it is read
        return cls(path, atomic.read_json(path / STATE))

    def recipe(self) -> Recipe:
        return load_recipe(self.path / RECIPE)

    def save(self) -> None:
        atomic.write_json(self.path / STATE, self.state)

    def done(self, stage: str) -> bool:
        return stage in self.state["stages"]

    def result(self, stage: str) -> dict[str, Any]:
        return self.state["stages"].get(stage, {})

    def promote(self, train_dir: Path, target: Path) -> Path:
        """Copy the kept checkpoint of `train_dir` to `target` whole; the resumable state is
        dropped only after the stage is recorded (`drop_training`), so a crash in between
        still resumes."""
        with atomic.atomic_dir(target) as tmp:
            for item in (Path(train_dir) / "best").iterdir():
                shutil.copy2(item, tmp / item.name)
        return Path(target)

    def drop_training(self) -> None:
        """Remove checkpoints and intermediate stage models once the run has recorded them."""
        shutil.rmtree(self.path / "training", ignore_errors=True)
        shutil.rmtree(self.path / "stages", ignore_errors=True)

    def complete(self, stage: str, **results: Any) -> None:
        """Record a finished stage; written immediately so a crash after it keeps it."""
        self.state["stages"][stage] = results
        self.save()


def cache_root() -> Path:
    """Where reusable derived data (augmented sets, the arm64 emulation root) lives: outside
    run folders, so that `--overwrite` reruns find it. COMPRESSOR_CACHE_DIR overrides
    ~/.cache/compressor."""
    return Path(os.environ.get("COMPRESSOR_CACHE_DIR", Path.home() / ".cache" / "compressor"))
