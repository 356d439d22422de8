"""int8 / int4 quantization of an exported ONNX classifier with ONNX Runtime's quantizer.

Dynamic: weights int8, activations quantized at run time. Settings are the ones our
measurements chose: signed int8 weights (unsigned ones ran slower), per-channel scales
(needed to keep predictions faithful) and full range (reduce_range=True lost fidelity). The
recipe's excluded nodes stay fp32, as in static int8.

Static: QDQ format with activation ranges calibrated on task sentences (MinMax, Entropy or
Percentile; calibrated here, then handed to quantize_static as its range cache). Only
MatMul / Gemm are quantized: the embedding Gather stays fp32 (it is a lookup, and FINDINGS
keeps it fp32 unless measured otherwise), as do the nodes the recipe excludes. The model is
pre-processed with ORT's `quant_pre_process` without its symbolic shape inference, which
fails on these exports.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data
from onnxruntime.quantization.shape_inference import quant_pre_process

from compressor.atomic import atomic_file
from compressor.errors import UserError


class _DropPreprocessHint(logging.Filter):
    """ORT asks for `quant_pre_process` on every call; its symbolic shape inference fails on
    these exports, so the hint is noise to our users."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Please consider to run pre-processing")


CALIBRATION = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}


@contextlib.contextmanager
def _written_atomically(onnx_path: Path, out_path: Path) -> Iterator[str]:
    """A temporary path beside `out_path`, renamed onto it if the body succeeds, with ORT's
    pre-processing hint silenced."""
    if not Path(onnx_path).is_file():
        raise UserError(f"{onnx_path} does not exist — export the model to ONNX first")
    hint_filter = _DropPreprocessHint()
    logging.getLogger().addFilter(hint_filter)
    try:
        with atomic_file(Path(out_path)) as tmp:
            yield str(tmp)
    finally:
        logging.getLogger().removeFilter(hint_filter)


VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
ReduceRange = bool | str


def cpu_has_vnni(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this x86 CPU has an int8 dot-product instruction (VNNI / AMX). Without one,
    ORT's u8s8 kernels (AVX2 vpmaddubsw) add pairs of products in saturating int16, and wide
    8-bit weights overflow; on an AVX2-only AMD EPYC the tiny BERT of tests/test_exporters.py
    fell under the 90 % agreement gate without reduce_range."""
    if not cpuinfo.is_file():
        return True
    flags = set(cpuinfo.read_text(encoding="utf-8", errors="replace").split())
    return any(flag in flags for flag in VNNI_FLAGS) or "avx2" not in flags


def resolve_reduce_range(setting: ReduceRange) -> bool:
    """`auto`: 7-bit weights only where the CPU would saturate 8-bit ones (ORT's advice for
    machines without VNNI); elsewhere they would only cost precision."""
    return (not cpu_has_vnni()) if setting == "auto" else bool(setting)


def quantize_dynamic_int8(
    onnx_path: Path,
    out_path: Path,
    *,
    per_channel: bool = True,
    exclude: list[str] | None = None,
    reduce_range: ReduceRange = "auto",
) -> Path:
    """Write an int8 copy of `onnx_path` to `out_path` and return `out_path`; nodes whose
    names match a pattern of `exclude` stay fp32, as in static int8.

    Only the .onnx file is written: keeping it in the fp32 model's folder lets it share that
    folder's tokenizer and config.
    """
    with _written_atomically(onnx_path, out_path) as tmp:
        skipped = excluded_nodes(onnx_path, exclude) if exclude else []
        quantize_dynamic(
            onnx_path,
            tmp,
            per_channel=per_channel,
            reduce_range=resolve_reduce_range(reduce_range),
            weight_type=QuantType.QInt8,
            # dynamic mode first rewrites each Gemm as a MatMul named `<name>_MatMul` and
            # matches the exclusions against the rewritten graph: the classifier head is a Gemm
            nodes_to_exclude=skipped + [f"{name}_MatMul" for name in skipped],
        )
    return Path(out_path)


QUANTIZED_OPS = ["MatMul", "Gemm"]
# ORT's Entropy calibrator defaults to 128 histogram bins folded into 128 quantized bins,
# where the KL search can only return the full range (MinMax's answer), and quantize_static
# does not pass bin counts through; TensorRT's 2048 bins let it clip outliers.
CALIBRATOR_OPTIONS = {"entropy": {"num_bins": 2048, "num_quantized_bins": 128}}


def _calibrate(model: Path, feeds: list[dict], method: str, work: Path, ranges: Path) -> None:
    """Activation ranges of `model` on `feeds`, written where quantize_static reads them."""
    calibrator = create_calibrator(
        model,
        QUANTIZED_OPS,
        augmented_model_path=str(work / "augmented.onnx"),
        calibrate_method=CALIBRATION[method],
        extra_options=CALIBRATOR_OPTIONS.get(method, {}),
    )
    calibrator.collect_data(_Feeds(feeds))
    save_tensors_data(calibrator.compute_data(), ranges)


class _Feeds(CalibrationDataReader):
    """Hands ORT's calibrator one tokenized batch at a time."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]):
        self._feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def excluded_nodes(onnx_path: Path, patterns: list[str]) -> list[str]:
    """Names of the graph's nodes that match any of the recipe's regular expressions."""
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    return [n.name for n in graph.node if any(re.search(p, n.name) for p in patterns)]


def quantize_static_int8(
    onnx_path: Path,
    out_path: Path,
    feeds: list[dict[str, np.ndarray]],
    *,
    method: str = "minmax",
    per_channel: bool = True,
    exclude: list[str] | None = None,
    reduce_range: ReduceRange = "auto",
) -> list[str]:
    """Write a static QDQ int8 copy of `onnx_path` calibrated on `feeds` (model inputs as
    numpy arrays); return the names of the nodes left in fp32 by `exclude`."""
    skipped = excluded_nodes(onnx_path, exclude or [])
    with _written_atomically(onnx_path, out_path) as tmp:
        work = Path(tempfile.mkdtemp(dir=Path(out_path).parent, prefix=".calibration."))
        try:
            prepared = work / "prepared.onnx"
            quant_pre_process(onnx_path, prepared, skip_symbolic_shape=True)
            ranges = work / "ranges.json"
            _calibrate(prepared, feeds, method, work, ranges)
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
                calibrate_method=CALIBRATION[method],
                calibration_cache_path=ranges,
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return skipped


def quantize_int4_weights(onnx_path: Path, out_path: Path, *, block_size: int = 32) -> Path:
    """Weight-only int4 (MatMulNBits, blockwise symmetric scales): the smallest file; activations
    stay fp32. Only MatMuls with constant weights are converted."""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    with _written_atomically(onnx_path, out_path) as tmp:
        quantizer = MatMulNBitsQuantizer(
            onnx.load(str(onnx_path)), bits=4, block_size=block_size, is_symmetric=True
        )
        quantizer.process()
        quantizer.model.save_model_to_file(tmp, use_external_data_format=False)
    return Path(out_path)


FP32_OPS = ["LayerNormalization", "SkipLayerNormalization", "Softmax"]


def convert_fp16(onnx_path: Path, out_path: Path, *, keep_fp32: list[str] | None = None) -> Path:
    """Half-precision weights and compute for GPU execution providers, with the
    normalisations and the softmax kept in fp32 (their reductions lose precision in fp16)
    and fp32 inputs / outputs, so callers feed and read the same tensors as before."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    with _written_atomically(onnx_path, out_path) as tmp:
        model = convert_float_to_float16(
            onnx.load(str(onnx_path)), keep_io_types=True, op_block_list=keep_fp32 or FP32_OPS
        )
        onnx.save(model, tmp)
    return Path(out_path)
