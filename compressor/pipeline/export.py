"""ONNX export: the fp32 file (a parity failure raises, so `compress` stops with nothing
shipped), then the optimized file, which is only dropped when it fails: fp32 still serves."""

from __future__ import annotations

from pathlib import Path

from compressor.pipeline.context import RunContext, console
from compressor.pipeline.stage import Stage


class Export(Stage):
    name = "export"

    def status(self, ctx: RunContext) -> str:
        return "exporting the student to ONNX and checking parity"

    def enabled(self, ctx: RunContext) -> bool:
        return not (ctx.skip_export or ctx.mlm)

    def plan(self, ctx: RunContext) -> str:
        cfg = ctx.recipe.export
        return (
            f"ONNX opset {cfg.opset}, parity within {cfg.parity_tolerance:g} on "
            f"{cfg.parity_samples} dev sentences" + (" + optimized file" if cfg.optimize else "")
        )

    def run(self, ctx: RunContext) -> None:
        from exporters.artifacts import export_checked, optimize_checked

        recipe, run = ctx.recipe, ctx.folder
        probe = ctx.data.dev.take(recipe.export.parity_samples)
        result = export_checked(
            ctx.model_dir,
            run.path / "onnx",
            probe,
            opset=recipe.export.opset,
            tolerance=recipe.export.parity_tolerance,
            max_length=recipe.data.max_length,
            recipe_hash=recipe.hash(),
        )
        if recipe.export.optimize:
            result["optimized"] = optimize_checked(
                Path(result["path"]),
                ctx.model_dir,
                probe,
                tolerance=recipe.export.parity_tolerance,
                max_length=recipe.data.max_length,
                recipe_hash=recipe.hash(),
            )
            if result["optimized"]["path"] is None:
                console.print(
                    "[red]optimized ONNX failed parity, not shipped: "
                    f"{result['optimized']['parity']}"
                )
        run.complete(self.name, **result)
