"""The teacher as a user ships it without us: its ONNX file and its own dynamic int8 file,
one quantizer call away. That int8 file is the number every student has to beat, so it is
made here, held to the same gates as the student's files, scored on dev and timed in the
same interleaved run."""

from __future__ import annotations

from pathlib import Path

from compressor.models import resolve_model_dir
from compressor.pipeline.context import RunContext, console
from compressor.pipeline.stage import Stage
from compressor.recipe import QuantizeConfig

BASELINE_MODE = "dynamic-int8"


def teacher_onnx_dir(ctx: RunContext) -> Path:
    return ctx.folder.path / "teacher_onnx"


class TeacherFiles(Stage):
    name = "teacher_files"

    def status(self, ctx: RunContext) -> str:
        return "exporting the teacher to ONNX and quantizing it: the baseline to beat"

    def enabled(self, ctx: RunContext) -> bool:
        return not (ctx.skip_export or ctx.mlm)

    def plan(self, ctx: RunContext) -> str:
        return (
            "the teacher's own ONNX file and its dynamic int8 file (per-channel weights), "
            "scored and timed beside the student: what a user gets without distillation"
        )

    def run(self, ctx: RunContext) -> None:
        from exporters.artifacts import export_teacher_checked, quantize_checked

        recipe = ctx.recipe
        teacher_dir = Path(resolve_model_dir(ctx.teacher))
        probe = ctx.data.dev.take(recipe.export.parity_samples)
        onnx = export_teacher_checked(
            teacher_dir,
            teacher_onnx_dir(ctx),
            probe,
            opset=recipe.export.opset,
            max_length=recipe.data.max_length,
            recipe_hash=recipe.hash(),
            tolerance=recipe.export.parity_tolerance,
        )
        int8 = quantize_checked(
            onnx,
            teacher_dir,
            probe,
            cfg=QuantizeConfig(mode=BASELINE_MODE),
            calibration=None,
            max_length=recipe.data.max_length,
            recipe_hash=recipe.hash(),
        )
        if int8["path"] is None:
            console.print(
                f"[yellow]the teacher's own int8 file failed its agreement gate: "
                f"{int8['parity']}; speed-ups are quoted against its fp32 ONNX file only"
            )
        ctx.folder.complete(self.name, onnx=str(onnx), int8=int8)
