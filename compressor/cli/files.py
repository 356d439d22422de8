"""Commands that make deployable files from a model alone: `export` and `quantize`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from compressor.cli.app import app, console
from compressor.cli.options import DataOptions, grouped
from compressor.recipe import load_recipe


@app.command()
@grouped
def export(
    model: Annotated[Path, typer.Argument(help="Model folder or run folder to export.")],
    out: Annotated[
        Path,
        typer.Option(
            help="Package folder to write in the Hugging Face hub's ONNX layout: config, tokenizer "
            "and manifest at its root, onnx/model.onnx."
        ),
    ],
    opset: Annotated[int, typer.Option(help="ONNX opset.")] = 18,
    data: DataOptions = DataOptions(),
    samples: Annotated[int, typer.Option(help="Dev sentences for the parity check.")] = 128,
    tolerance: Annotated[float, typer.Option(help="Max |logit difference| allowed.")] = 1e-3,
) -> None:
    """Export to ONNX (dynamic batch / sequence axes) and check parity on real dev inputs."""
    from exporters.artifacts import export_model

    recipe = load_recipe(None, data.overrides())
    console.print(
        export_model(model, out, recipe, opset=opset, samples=samples, tolerance=tolerance)
    )


@app.command()
@grouped
def quantize(
    onnx_dir: Annotated[
        Path,
        typer.Argument(
            help="Package folder written by `export` (onnx/model.onnx inside), or the .onnx file."
        ),
    ],
    mode: Annotated[
        str,
        typer.Option(
            help="dynamic-int8 (activations quantized at run time), static-int8 (QDQ, "
            "activation ranges calibrated on the training sentences of --data), int4 "
            "(weight-only) or fp16 (GPU targets; LayerNorm / Softmax stay fp32)."
        ),
    ] = "dynamic-int8",
    per_channel: Annotated[bool, typer.Option(help="Per-channel weight scales.")] = True,
    calibration: Annotated[
        str | None,
        typer.Option(help="static-int8: minmax, entropy or percentile. \\[default: percentile]"),
    ] = None,
    calibration_samples: Annotated[
        int | None, typer.Option(help="static-int8: calibration sentences. \\[default: 512]")
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(help="int8: regex on ONNX node names to keep in fp32 (repeatable)."),
    ] = None,
    max_drop: Annotated[
        float | None,
        typer.Option(
            help="int8 / int4: points the file may disagree with fp32 on training sentences "
            "(labels changed; for a tagger, 100 - entity F1 against fp32's entities); over "
            "it, the costliest nodes stay fp32 until within. \\[default: no limit]"
        ),
    ] = None,
    data: DataOptions = DataOptions(),
) -> None:
    """Quantize an exported model and re-measure its dev accuracy next to the fp32 file's."""
    from exporters.artifacts import quantize_model

    recipe = load_recipe(
        None,
        data.overrides()
        | {
            "quantize.mode": mode,
            "quantize.per_channel": per_channel,
            "quantize.calibration": calibration,
            "quantize.calibration_samples": calibration_samples,
            "quantize.exclude": exclude,
            "quantize.max_drop": max_drop,
        },
    )
    console.print(quantize_model(onnx_dir, recipe))
