"""Dev accuracy of every artifact of the run; each shipped ONNX and .ort file also carries
its own score in the manifest, so a deployed copy states what it was measured at."""

from __future__ import annotations

from pathlib import Path

from compressor.pipeline.artifacts import run_artifacts
from compressor.pipeline.context import RunContext, console
from compressor.pipeline.stage import Stage


class Evaluate(Stage):
    name = "evaluate"

    def enabled(self, ctx: RunContext) -> bool:
        return not ctx.mlm

    def skipped_because(self, ctx: RunContext) -> str:
        return "a pre-trained masked LM: fine-tune it for a task"

    def plan(self, ctx: RunContext) -> str:
        return f"dev accuracy of every model and file on {len(ctx.data.dev)} examples"

    def run(self, ctx: RunContext) -> None:
        from compressor.inference import accuracy
        from exporters.artifacts import record_dev_accuracy

        run, dev, max_length = ctx.folder, ctx.data.dev, ctx.recipe.data.max_length
        scores = {}
        for key, artifact in run_artifacts(run, ctx.teacher).items():
            with console.status(f"dev accuracy of {key}"):
                if artifact.path.suffix == ".onnx":
                    scores[key] = record_dev_accuracy(artifact.path, dev, max_length=max_length)
                else:
                    scores[key] = accuracy(artifact.path, dev.texts, dev.pairs, dev.labels,
                                           max_length=max_length)  # fmt: skip
        for item in run.result("ort_format").get("files", []):
            if item["ort"]:
                with console.status(f"dev accuracy of {Path(item['ort']).name}"):
                    record_dev_accuracy(Path(item["ort"]), dev, max_length=max_length)
        run.complete(self.name, dev_accuracy=scores, dev_examples=len(dev))
