"""Deployable files, each checked before it is recorded: ONNX export gated on parity with
PyTorch, quantized files (one module per mode in `exporters.quant`) with their agreement
measured. `compress` and the single-stage `export` / `quantize` commands share these
functions, so both write the same manifest."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from compressor.data import Split, load_task_data
from compressor.errors import UserError
from compressor.layout import graphs_dir, package_root
from compressor.models import resolve_model_dir
from compressor.recipe import QuantizeConfig, Recipe
from compressor.tasks import DEFAULT_TASK, task_named


def export_checked(
    model_dir: Path,
    out_dir: Path,
    probe: Split,
    *,
    opset: int,
    tolerance: float,
    max_length: int,
    recipe_hash: str,
) -> dict:
    """Export to ONNX, compare logits with PyTorch on `probe`, record both in the manifest.

    An export that fails parity computes something else than the model it came from, so its
    folder is deleted and a UserError raised: no later stage may quantize, time or ship it.
    """
    from exporters.manifest import record_companions, update_manifest
    from exporters.onnx import export_onnx
    from exporters.parity import check_parity

    onnx_path = export_onnx(model_dir, out_dir, opset=opset)
    parity = check_parity(
        model_dir, onnx_path, probe.texts, probe.pairs, tolerance=tolerance, max_length=max_length
    )
    if not parity.passed:
        shutil.rmtree(package_root(onnx_path))
        raise UserError(
            f"the ONNX export of {model_dir} does not match PyTorch on {parity.n} dev sentences "
            f"(max |logit difference| {parity.max_abs_diff:.2e}, tolerance {tolerance:g}; "
            f"argmax agreement {parity.argmax_agreement:.1%}) and was removed — try another "
            "opset (export.opset / --opset), or raise the tolerance if the gap is rounding noise"
        )
    tokenizer_files = record_companions(package_root(onnx_path), recipe_hash=recipe_hash)
    update_manifest(
        onnx_path,
        source_model=str(model_dir),
        recipe_hash=recipe_hash,
        parity=parity.to_dict(),
        tokenizer_files=tokenizer_files,
    )
    return {"path": str(onnx_path), "parity": parity.to_dict(), "tokenizer_files": tokenizer_files}


def export_teacher_checked(
    teacher_dir: Path,
    out_dir: Path,
    probe_split: Split,
    *,
    opset: int,
    max_length: int,
    recipe_hash: str,
    tolerance: float = 1e-3,
) -> Path:
    """The teacher's ONNX file for the latency comparison, held to the student's parity gate:
    a speed-up measured against a wrong teacher file would mean nothing."""
    result = export_checked(
        teacher_dir,
        out_dir,
        probe_split,
        opset=opset,
        tolerance=tolerance,
        max_length=max_length,
        recipe_hash=recipe_hash,
    )
    return Path(result["path"])


def optimize_checked(
    fp32: Path, reference: Path, probe: Split, *, tolerance: float, max_length: int,
    recipe_hash: str,
) -> dict:  # fmt: skip
    """model_optimized.onnx beside `fp32`, parity-checked against `reference` like the export;
    a file that fails is deleted and reported, never shipped."""
    from exporters.manifest import update_manifest
    from exporters.optimize import optimize_transformer
    from exporters.parity import check_parity

    target = fp32.with_name(f"{fp32.stem}_optimized.onnx")
    fused = optimize_transformer(fp32, target)
    parity = check_parity(reference, target, probe.texts, probe.pairs, tolerance=tolerance,
                          max_length=max_length)  # fmt: skip
    if not parity.passed:
        target.unlink()
        return {"path": None, "fused": fused, "parity": parity.to_dict()}
    update_manifest(target, source_model=str(fp32), recipe_hash=recipe_hash,
                    optimization={"fused": fused}, parity=parity.to_dict())  # fmt: skip
    return {"path": str(target), "fused": fused, "parity": parity.to_dict()}


def ort_format_checked(
    files: list[Path], probe: Split, *, max_length: int, recipe_hash: str
) -> list[dict]:
    """Each ONNX file also as .ort for ONNX Runtime Mobile; the .ort must give the same
    logits as its source file, or it is deleted (with its operator config) and reported with
    path None, like every other file that fails its check."""
    from exporters.manifest import manifest_key, onnx_signature, update_manifest
    from exporters.mobile import convert_to_ort
    from exporters.parity import check_parity

    made = []
    for source in files:
        paths = convert_to_ort(source)
        ort_file, config = Path(paths["ort"]), Path(paths["required_operators"])
        parity = check_parity(source, ort_file, probe.texts, probe.pairs, tolerance=1e-5,
                              max_length=max_length)  # fmt: skip
        if not parity.passed:
            ort_file.unlink()
            config.unlink()
            made.append({"ort": None, "source": str(source), "parity": parity.to_dict()})
            continue
        update_manifest(ort_file, source_model=str(source),
                        recipe_hash=recipe_hash, required_operators=manifest_key(config),
                        parity_with_source=parity.to_dict(), **onnx_signature(source))  # fmt: skip
        update_manifest(config, role="operators a reduced ORT build needs",
                        source_model=manifest_key(ort_file), recipe_hash=recipe_hash)  # fmt: skip
        made.append({**paths, "source": str(source), "parity": parity.to_dict()})
    return made


def calibration_feeds(
    onnx_path: Path, sample: Split, *, max_length: int, batch_size: int = 8
) -> list[dict]:
    """Tokenized batches of `sample` in the ONNX file's own input names, for calibration;
    all padded to one length, since the histogram calibrators stack them."""
    import onnx

    from compressor.models import load_tokenizer

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    names = {i.name for i in graph.input}
    tokenizer = load_tokenizer(package_root(onnx_path))
    enc = tokenizer(sample.sentences, sample.pairs, truncation=True, max_length=max_length,
                    padding=True, return_tensors="np")  # fmt: skip
    return [
        {k: v[start : start + batch_size].astype("int64") for k, v in enc.items() if k in names}
        for start in range(0, len(sample), batch_size)
    ]


def quantize_checked(
    fp32: Path,
    reference: Path,
    probe: Split,
    *,
    cfg: QuantizeConfig,
    calibration: Split | None,
    max_length: int,
    recipe_hash: str,
    out_path: Path | None = None,
    **manifest_fields: object,
) -> dict:
    """The file of quantization mode `cfg.mode` made from `fp32`, judged against `reference`
    on `probe` by the mode's gate; modes that calibrate read `cfg.calibration_samples` of
    `calibration`, and `cfg.max_drop` holds `cfg.max_drop_samples` of them to measure the
    file's drop (`exporters.quant.fallback`).

    A file under the gate is deleted and its result has path None. `out_path` (default: the
    mode's name beside `fp32`) lets several settings of one mode live side by side, each under
    its own manifest entry. The result carries the mode's report `label`, `format` and `key`,
    so callers list the file without a table of their own.
    """
    from exporters.manifest import update_manifest
    from exporters.quant import get_mode
    from exporters.quant.fallback import within_max_drop

    mode = get_mode(cfg.mode)
    target = out_path or mode.path_for(fp32)
    feeds = None
    if mode.needs_calibration:
        if calibration is None:
            raise ValueError(f"{cfg.mode} needs calibration sentences")
        sample = calibration.take(cfg.calibration_samples)
        feeds = calibration_feeds(fp32, sample, max_length=max_length)
    if cfg.max_drop is None:
        settings = mode.make(fp32, target, cfg, feeds)
    else:
        if calibration is None:
            raise ValueError("quantize.max_drop needs labelled training sentences")
        settings = within_max_drop(
            fp32,
            calibration.take(cfg.max_drop_samples),
            limit=cfg.max_drop,
            make=lambda extra: mode.make(
                fp32, target, cfg.model_copy(update={"exclude": [*cfg.exclude, *extra]}), feeds
            ),
            target=target,
            max_length=max_length,
        )
    parity = mode.check(reference, target, probe, cfg=cfg, max_length=max_length).to_dict()
    made = {"parity": parity, "quantization": settings, **mode.names()}
    if not parity["passed"]:
        target.unlink()
        return {"path": None, **made}
    update_manifest(target, source_model=str(fp32), recipe_hash=recipe_hash,
                    quantization=settings, parity=parity, report=mode.names(),
                    **manifest_fields)  # fmt: skip
    return {"path": str(target), **made}


def record_dev_accuracy(path: Path, dev: Split, *, max_length: int) -> dict[str, Any]:
    """Score one ONNX or ORT file on the whole dev set and write the figures into its manifest
    entry, so a deployed copy carries the accuracy it was shipped with.

    A file with per-batch activation scales (dynamic int8) gives a sentence a label that
    depends on its batch, so it gets two labelled figures: `dev_accuracy` one sentence at a
    time, as a server answers requests (and as latency is timed), and `dev_accuracy_batched`
    at `predict`'s batch size, which a user scoring a file gets. Other files score the same at
    any batch size and get one. `dev_accuracy` is the task's main figure: entity F1 for
    token classification, which `dev_metric` then names.
    """
    from compressor.inference import DEFAULT_BATCH, dev_scores, other_figures
    from exporters.manifest import update_manifest
    from exporters.quant import scales_per_batch

    def score(batch_size: int) -> dict[str, Any]:
        return dev_scores(path, dev, max_length=max_length, batch_size=batch_size)

    def figures_of(scores: dict[str, Any]) -> dict[str, Any]:
        """The main figure as `dev_accuracy`, the key every reader knows, and the rest of a
        task with other figures (entity F1's precision and recall) under `dev_figures`."""
        others = other_figures(scores)
        return {"dev_accuracy": scores["score"], **({"dev_figures": others} if others else {})}

    figures: dict[str, Any] = {"dev_examples": len(dev)}
    if dev.task != DEFAULT_TASK:
        figures["dev_metric"] = task_named(dev.task).metric
    if scales_per_batch(path):
        figures.update(figures_of(score(1)))
        figures["dev_accuracy_batched"] = {
            "batch_size": DEFAULT_BATCH,
            **figures_of(score(DEFAULT_BATCH)),
        }
    else:
        figures.update(figures_of(score(DEFAULT_BATCH)))
    update_manifest(path, **figures)
    return figures


def export_model(
    model: Path, out: Path, recipe: Recipe, *, opset: int, samples: int, tolerance: float
) -> dict:
    """`compressor export`: any model folder, parity on the recipe's dev sentences, the file
    scored on the whole dev set."""
    model_dir = Path(resolve_model_dir(model))
    dev = load_task_data(recipe.data).dev
    max_length = recipe.data.max_length
    result = export_checked(
        model_dir,
        out,
        dev.take(samples),
        opset=opset,
        tolerance=tolerance,
        max_length=max_length,
        recipe_hash=recipe.hash(),
    )
    result.update(record_dev_accuracy(Path(result["path"]), dev, max_length=max_length))
    return result


MAX_DROP_SUMMARY = (
    "limit_points",
    "metric",
    "examples",
    "changed_points_before",
    "changed_points_after",
    "within_limit",
    "kept_fp32",
    "size_mb_before",
    "size_mb_after",
)


def quantize_model(onnx_dir: Path, recipe: Recipe) -> dict:
    """`compressor quantize`: the recipe's mode beside model.onnx, both files scored on the dev
    set and their scores written into the manifest."""
    fp32 = Path(onnx_dir)
    if fp32.is_dir():
        fp32 = graphs_dir(fp32) / "model.onnx" if graphs_dir(fp32).is_dir() else fp32 / "model.onnx"
    if not fp32.is_file():
        raise UserError(f"{fp32} does not exist — pass the folder written by `compressor export`")
    if recipe.quantize.mode == "none":
        from compressor.registry import QUANT_MODES

        raise UserError(f"--mode none quantizes nothing — pick one of {', '.join(QUANT_MODES)}")
    data = load_task_data(recipe.data)
    dev = data.dev
    max_length = recipe.data.max_length
    acc_fp32 = record_dev_accuracy(fp32, dev, max_length=max_length)["dev_accuracy"]
    result = quantize_checked(
        fp32,
        fp32,
        dev,
        cfg=recipe.quantize,
        calibration=data.train,
        max_length=max_length,
        recipe_hash=recipe.hash(),
    )
    if result["path"] is None:
        raise UserError(
            f"the {recipe.quantize.mode} file agrees with fp32 on only "
            f"{result['parity']['argmax_agreement']:.1%} of the dev sentences (minimum "
            f"{recipe.quantize.min_agreement:.0%}) and was removed — try static-int8 with more "
            "calibration samples, per-channel weights, or excluding sensitive nodes"
        )
    quantized = record_dev_accuracy(Path(result["path"]), dev, max_length=max_length)
    made = {
        "path": result["path"],
        "label": result["label"],
        "dev_accuracy_fp32": acc_fp32,
        "dev_accuracy_quantized": quantized["dev_accuracy"],
        "argmax_agreement_with_fp32": result["parity"]["argmax_agreement"],
    }
    if "dev_accuracy_batched" in quantized:
        made["dev_accuracy_quantized_batched"] = quantized["dev_accuracy_batched"]
    limited = result["quantization"].get("max_drop")
    if limited:  # the ranking stays in the manifest: the summary is what a user decides on
        made["max_drop"] = {key: limited[key] for key in MAX_DROP_SUMMARY}
    return made
