"""Post-training quantization of the exported student in the recipe's mode; a file under its
agreement gate is removed and reported, never shipped."""

from __future__ import annotations

from pathlib import Path

from compressor.pipeline.context import RunContext, console
from compressor.pipeline.stage import Stage


class Quantize(Stage):
    name = "quantize"

    def status(self, ctx: RunContext) -> str:
        return f"quantizing ({ctx.recipe.quantize.mode}) and checking agreement"

    def enabled(self, ctx: RunContext) -> bool:
        return not (ctx.skip_export or ctx.mlm) and ctx.recipe.quantize.mode != "none"

    def plan(self, ctx: RunContext) -> str:
        cfg = ctx.recipe.quantize
        return f"{cfg.mode}, shipped when it agrees with PyTorch on >= {cfg.min_agreement:.0%}"

    def run(self, ctx: RunContext) -> None:
        from exporters.artifacts import quantize_checked

        recipe, run = ctx.recipe, ctx.folder
        result = quantize_checked(
            Path(run.result("export")["path"]),
            ctx.model_dir,
            ctx.data.dev.take(recipe.export.parity_samples),
            cfg=recipe.quantize,
            calibration=ctx.data.train,
            max_length=recipe.data.max_length,
            recipe_hash=recipe.hash(),
        )
        if result["path"] is None:
            console.print(
                f"[red]{recipe.quantize.mode} file failed its agreement gate and was not "
                f"shipped: {result['parity']}"
            )
        limited = result["quantization"].get("max_drop")
        if limited:
            console.print(
                f"quantize.max_drop {limited['limit_points']:g}: the file changed "
                f"{limited['changed_points_before']:.2f} points of the fp32 file's labels on "
                f"{limited['examples']} training sentences, "
                f"{limited['changed_points_after']:.2f} with {len(limited['kept_fp32'])} "
                f"node(s) kept in fp32 ({limited['size_mb_before']:.1f} -> "
                f"{limited['size_mb_after']:.1f} MB; accuracy drop {limited['drop_points']:.2f})"
            )
        run.complete(self.name, **result)
