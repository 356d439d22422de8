"""ORT format: every shipped ONNX file (fp32, optimized, quantized, end to end) also as .ort
for ONNX Runtime Mobile; one that does not match its source is removed and reported."""

from __future__ import annotations

from pathlib import Path

from compressor.pipeline.context import RunContext, console
from compressor.pipeline.stage import Stage


class OrtFormat(Stage):
    name = "ort_format"

    def status(self, ctx: RunContext) -> str:
        return "converting to ORT format for ONNX Runtime Mobile"

    def enabled(self, ctx: RunContext) -> bool:
        return not (ctx.skip_export or ctx.mlm) and ctx.recipe.export.ort_format

    def plan(self, ctx: RunContext) -> str:
        return "every shipped ONNX file also as .ort, with its operator list"

    def run(self, ctx: RunContext) -> None:
        from exporters.artifacts import ort_format_checked

        run, recipe = ctx.folder, ctx.recipe
        export = run.result("export")
        candidates = [
            export["path"],
            (export.get("optimized") or {}).get("path"),
            run.result("quantize").get("path"),
            *(item["path"] for item in run.result("e2e").get("files", [])),
        ]
        files = [Path(path) for path in candidates if path]
        probe = ctx.data.dev.take(recipe.export.parity_samples)
        made = ort_format_checked(
            files, probe, max_length=recipe.data.max_length, recipe_hash=recipe.hash()
        )
        for item in made:
            if item["ort"] is None:
                console.print(
                    f"[red]{Path(item['source']).name} as .ort does not match it, not shipped: "
                    f"{item['parity']}"
                )
        run.complete(self.name, files=made)
