"""Static int8: QDQ format with activation ranges calibrated on task sentences (MinMax,
Entropy or Percentile; calibrated here, then handed to quantize_static as its range cache).

Only MatMul / Gemm are quantized: the embedding Gather stays fp32 (a lookup, with no
arithmetic for int8 to speed up), as do the nodes the recipe excludes.
The model is pre-processed with ORT's `quant_pre_process` without its symbolic shape
inference, which fails on these exports.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from compressor.registry import QUANT_MODES
from exporters.quant import Feeds, QuantMode
from exporters.quant._common import (
    ReduceRange,
    excluded_nodes,
    resolve_reduce_range,
    written_atomically,
)

if TYPE_CHECKING:
    from compressor.recipe import QuantizeConfig

# recipe name -> onnxruntime.quantization.CalibrationMethod member
CALIBRATION = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
QUANTIZED_OPS = ["MatMul", "Gemm"]
# ORT's Entropy calibrator defaults to 128 histogram bins folded into 128 quantized bins,
# where the KL search can only return the full range (MinMax's answer), and quantize_static
# does not pass bin counts through; TensorRT's 2048 bins let it clip outliers.
CALIBRATOR_OPTIONS = {"entropy": {"num_bins": 2048, "num_quantized_bins": 128}}


class _Feeds:
    """Hands ORT's calibrator one tokenized batch at a time (ORT's CalibrationDataReader
    accepts any class with `get_next`)."""

    def __init__(self, feeds: Feeds):
        self._feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


@dataclass
class _Calibration:
    """The last ranges computed: `quantize.max_drop` quantizes one model with one method on
    the same feeds once per candidate node, and the ranges do not depend on which nodes stay
    fp32, so each file after the first reads them instead of calibrating again."""

    key: tuple[str, int, str]
    feeds: Feeds
    data: Any


_last: _Calibration | None = None


def _calibrate(
    source: Path, model: Path, feeds: Feeds, method: str, work: Path, ranges: Path
) -> None:
    """Activation ranges of `model` (prepared from `source`) on `feeds`, written where
    quantize_static reads them."""
    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

    global _last
    key = (str(Path(source).resolve()), Path(source).stat().st_mtime_ns, method)
    if _last is None or _last.key != key or _last.feeds is not feeds:
        calibrator = create_calibrator(
            model,
            QUANTIZED_OPS,
            augmented_model_path=str(work / "augmented.onnx"),
            calibrate_method=CalibrationMethod[CALIBRATION[method]],
            extra_options=CALIBRATOR_OPTIONS.get(method, {}),
        )
        calibrator.collect_data(_Feeds(feeds))
        _last = _Calibration(key, feeds, calibrator.compute_data())
    save_tensors_data(_last.data, ranges)


def quantize_static_int8(
    onnx_path: Path,
    out_path: Path,
    feeds: Feeds,
    *,
    method: str = "minmax",
    per_channel: bool = True,
    exclude: list[str] | None = None,
    reduce_range: ReduceRange = "auto",
) -> list[str]:
    """Write a static QDQ int8 copy of `onnx_path` calibrated on `feeds` (model inputs as
    numpy arrays); return the names of the nodes left in fp32 by `exclude`."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    skipped = excluded_nodes(onnx_path, exclude or [])
    with written_atomically(onnx_path, out_path) as tmp:
        work = Path(tempfile.mkdtemp(dir=Path(out_path).parent, prefix=".calibration."))
        try:
            prepared = work / "prepared.onnx"
            quant_pre_process(onnx_path, prepared, skip_symbolic_shape=True)
            ranges = work / "ranges.json"
            _calibrate(onnx_path, prepared, feeds, method, work, ranges)
            quantize_static(
                prepared,
                tmp,
                None,
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=QUANTIZED_OPS,
                per_channel=per_channel,
                reduce_range=resolve_reduce_range(reduce_range),
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=skipped,
                calibrate_method=CalibrationMethod[CALIBRATION[method]],
                calibration_cache_path=ranges,
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return skipped


@QUANT_MODES.register("static-int8")
class StaticInt8(QuantMode):
    """Activations quantized with fixed, calibrated ranges: no run-time range search, at the
    price of calibration sentences."""

    suffix = "static_int8"
    label = "static int8"
    needs_calibration = True
    # QDQ files (ours) carry QuantizeLinear; QOperator ones (optimum's static) QLinearMatMul
    marker_ops = frozenset({"QuantizeLinear", "QLinearMatMul"})
    int8_matmul_ops = frozenset({"QLinearMatMul"})
    qdq_matmuls = True

    def make(
        self, fp32: Path, out: Path, cfg: QuantizeConfig, feeds: Feeds | None = None
    ) -> dict[str, Any]:
        if feeds is None:
            raise ValueError("static int8 needs calibration sentences")
        reduce_range = resolve_reduce_range(cfg.reduce_range)
        skipped = quantize_static_int8(fp32, out, feeds, method=cfg.calibration,
                                       per_channel=cfg.per_channel, exclude=cfg.exclude,
                                       reduce_range=reduce_range)  # fmt: skip
        return {
            "mode": self.name,
            "per_channel": cfg.per_channel,
            "reduce_range": reduce_range,
            "excluded_nodes": skipped,
            "calibration": cfg.calibration,
            "calibration_samples": sum(len(next(iter(batch.values()))) for batch in feeds),
        }
