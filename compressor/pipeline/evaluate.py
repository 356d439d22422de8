"""Dev accuracy (the task's main figure: entity F1 for tagged words) of every artifact of
the run; each shipped ONNX and .ort file also carries its own score in the manifest, so a
deployed copy states what it was measured at. Files whose labels depend on their batch
(dynamic int8) are scored one sentence at a time, as served, and at `predict`'s batch size
(`dev_accuracy_batched`)."""

from __future__ import annotations

from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

from compressor.pipeline.artifacts import run_artifacts
from compressor.pipeline.context import RunContext, console
from compressor.pipeline.stage import Stage
from compressor.progress import LoggedProgress, LogLine
from compressor.tasks import task_named


class Evaluate(Stage):
    name = "evaluate"

    def enabled(self, ctx: RunContext) -> bool:
        return not ctx.mlm

    def skipped_because(self, ctx: RunContext) -> str:
        return "a pre-trained masked LM: fine-tune it for a task"

    def plan(self, ctx: RunContext) -> str:
        metric = task_named(ctx.data.task).metric
        return f"dev {metric} of every model and file on {len(ctx.data.dev)} examples"

    def run(self, ctx: RunContext) -> None:
        """One model or file after another, under a bar that also logs progress lines
        without a terminal: on a large dev set one teacher pass takes minutes."""
        from compressor.inference import dev_scores, other_figures
        from exporters.artifacts import record_dev_accuracy

        run, dev, max_length = ctx.folder, ctx.data.dev, ctx.recipe.data.max_length
        metric = task_named(dev.task).metric
        artifacts = run_artifacts(run, ctx.teacher)
        ort_files = [Path(i["ort"]) for i in run.result("ort_format").get("files", []) if i["ort"]]
        progress = LoggedProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        scores: dict[str, float] = {}
        batched: dict[str, dict] = {}
        figures: dict[str, dict] = {}
        with progress:
            task = progress.add_task(
                f"dev {metric}", total=len(artifacts) + len(ort_files), log=LogLine(items="files")
            )
            for key, artifact in artifacts.items():
                progress.update(task, description=f"dev {metric} of {key}")
                if artifact.path.suffix == ".onnx":
                    recorded = record_dev_accuracy(artifact.path, dev, max_length=max_length)
                    scores[key] = recorded["dev_accuracy"]
                    if "dev_accuracy_batched" in recorded:
                        batched[key] = recorded["dev_accuracy_batched"]
                    if "dev_figures" in recorded:
                        figures[key] = recorded["dev_figures"]
                else:
                    found = dev_scores(artifact.path, dev, max_length=max_length)
                    scores[key] = found["score"]
                    if other_figures(found):
                        figures[key] = other_figures(found)
                progress.advance(task)
            for ort_file in ort_files:
                progress.update(task, description=f"dev {metric} of {ort_file.name}")
                record_dev_accuracy(ort_file, dev, max_length=max_length)
                progress.advance(task)
        run.complete(self.name, dev_accuracy=scores, dev_accuracy_batched=batched,
                     dev_examples=len(dev), dev_metric=metric,
                     **({"dev_figures": figures} if figures else {}))  # fmt: skip
