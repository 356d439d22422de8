"""Stages run again on a finished compress run from their own commands: `benchmark` (another
target, other threads or shapes) and `report`. Same stage code as inside `compress`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compressor.errors import UserError
from compressor.pipeline.benchmark import benchmark
from compressor.pipeline.report import write_run_report
from compressor.recipe import benchmark_settings
from compressor.runfolder import RunFolder


def benchmark_again(run_dir: Path, against: str | None, flags: dict[str, Any]) -> dict[str, Path]:
    """Time the run's files with the run's benchmark settings and `flags` laid over them,
    against its own teacher unless `against` names another, then rewrite the report. A
    `remote` device implies the ARM target measured there."""
    run = RunFolder.open(run_dir)
    recipe = run.recipe()
    flags = dict(flags)
    if flags.get("remote"):
        if (flags.get("target") or "arm") != "arm" or (
            flags.get("arm_mode") or "measured"
        ) != "measured":
            raise UserError(
                "--remote measures on the device: use it with --target arm --arm-mode measured, "
                "or leave both out"
            )
        flags |= {"target": "arm", "arm_mode": "measured"}
    recipe = recipe.model_copy(update={"benchmark": benchmark_settings(recipe.benchmark, flags)})
    trained = run.result("prune") or run.result("distill")
    benchmark(run, against or trained.get("teacher", ""), recipe)
    return write_run_report(run)


def report_again(run_dir: Path) -> dict[str, Path]:
    """Rebuild report.json / .md / .html from the run's recorded measurements."""
    return write_run_report(RunFolder.open(run_dir))
