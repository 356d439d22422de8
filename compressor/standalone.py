"""Single stages run from the CLI on any folder, outside a compress run."""

from __future__ import annotations

from pathlib import Path

from compressor.data import load_task_data
from compressor.errors import UserError
from compressor.models import resolve_model_dir
from compressor.recipe import Recipe


def export_model(
    model: Path, out: Path, recipe: Recipe, *, opset: int, samples: int, tolerance: float
) -> dict:
    """Export a model folder to ONNX and gate it on parity with PyTorch on dev sentences."""
    from exporters.manifest import update_manifest
    from exporters.onnx import export_onnx
    from exporters.parity import check_parity

    model_dir = Path(resolve_model_dir(model))
    onnx_path = export_onnx(model_dir, out, opset=opset)
    probe = load_task_data(recipe.data).dev.take(samples)
    parity = check_parity(
        model_dir,
        onnx_path,
        probe.texts,
        probe.pairs,
        tolerance=tolerance,
        max_length=recipe.data.max_length,
    )
    update_manifest(
        onnx_path.parent,
        onnx_path.name,
        source_model=str(model_dir),
        recipe_hash=recipe.hash(),
        parity=parity.to_dict(),
    )
    return {"path": str(onnx_path), "parity": parity.to_dict()}


def quantize_model(onnx_dir: Path, recipe: Recipe) -> dict:
    """Quantize model.onnx and measure both files' dev accuracy with ONNX Runtime."""
    from benchmarks.evaluate import accuracy
    from exporters.manifest import update_manifest
    from exporters.parity import check_parity
    from exporters.quantize import quantize_dynamic_int8

    fp32 = Path(onnx_dir)
    if fp32.is_dir():
        fp32 = fp32 / "model.onnx"
    if not fp32.is_file():
        raise UserError(f"{fp32} does not exist — pass the folder written by `compressor export`")
    if recipe.quantize.mode != "dynamic-int8":
        raise UserError(f"--mode {recipe.quantize.mode} is not available yet — use dynamic-int8")
    int8 = quantize_dynamic_int8(
        fp32, fp32.with_name(f"{fp32.stem}_int8.onnx"), per_channel=recipe.quantize.per_channel
    )
    dev = load_task_data(recipe.data).dev
    kwargs = {"max_length": recipe.data.max_length}
    acc_fp32 = accuracy(fp32, dev.texts, dev.pairs, dev.labels, **kwargs)
    acc_int8 = accuracy(int8, dev.texts, dev.pairs, dev.labels, **kwargs)
    parity = check_parity(
        fp32,
        int8,
        dev.texts,
        dev.pairs,
        tolerance=float("inf"),
        min_agreement=0.0,
        max_length=recipe.data.max_length,
    )
    update_manifest(
        int8.parent,
        int8.name,
        source_model=str(fp32),
        recipe_hash=recipe.hash(),
        quantization={"mode": recipe.quantize.mode, "per_channel": recipe.quantize.per_channel},
        dev_accuracy=acc_int8,
        parity=parity.to_dict(),
    )
    return {
        "path": str(int8),
        "dev_accuracy_fp32": acc_fp32,
        "dev_accuracy_int8": acc_int8,
        "argmax_agreement": parity.argmax_agreement,
    }
