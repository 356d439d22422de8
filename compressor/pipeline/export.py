"""ONNX export: the fp32 file (a parity failure raises, so `compress` stops with nothing
shipped), then the optimized file, which is only dropped when it fails: fp32 still serves.
ONNX Runtime's optimizer fuses transformer patterns (attention, LayerNorm, GELU), so a
student of another kind gets no optimized file, and the export records why."""

from __future__ import annotations

from pathlib import Path

from compressor.pipeline.context import RunContext, console
from compressor.pipeline.stage import Stage
from compressor.students import DEFAULT_KIND


def no_optimization(kind: str) -> str | None:
    """Why a student of this kind gets no optimized file, or None when it gets one."""
    if kind == DEFAULT_KIND:
        return None
    return (
        f"ONNX Runtime's optimizer fuses transformer attention, LayerNorm and GELU; a {kind} "
        "student has none of them"
    )


class Export(Stage):
    name = "export"

    def status(self, ctx: RunContext) -> str:
        return "exporting the student to ONNX and checking parity"

    def enabled(self, ctx: RunContext) -> bool:
        return not (ctx.skip_export or ctx.mlm)

    def plan(self, ctx: RunContext) -> str:
        cfg = ctx.recipe.export
        line = (
            f"ONNX opset {cfg.opset}, parity within {cfg.parity_tolerance:g} on "
            f"{cfg.parity_samples} dev sentences"
        )
        if not cfg.optimize:
            return line
        skipped = no_optimization(ctx.recipe.student.kind)
        return f"{line} (no optimized file: {skipped})" if skipped else f"{line} + optimized file"

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
        skipped = no_optimization(recipe.student.kind)
        if recipe.export.optimize and skipped:
            result["optimized"] = {"path": None, "skipped": skipped}
        elif recipe.export.optimize:
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
