"""Dynamic int8: weights int8, activations quantized at run time.

Settings are the ones our measurements chose: signed int8 weights (unsigned ones ran
slower), per-channel scales (needed to keep predictions faithful: tests/test_exporters.py
measures per-tensor ones) and full range where the CPU allows it (see
`_common.resolve_reduce_range`). The recipe's excluded nodes stay fp32, as in static int8.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

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


def quantize_dynamic_int8(
    onnx_path: Path,
    out_path: Path,
    *,
    per_channel: bool = True,
    exclude: list[str] | None = None,
    reduce_range: ReduceRange = "auto",
) -> Path:
    """Write an int8 copy of `onnx_path` to `out_path` and return `out_path`; nodes whose
    names match a pattern of `exclude` stay fp32, as in static int8."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with written_atomically(onnx_path, out_path) as tmp:
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


@QUANT_MODES.register("dynamic-int8")
class DynamicInt8(QuantMode):
    """The default mode: no calibration data needed, and the file every report has shown as
    "student ONNX int8"."""

    suffix = "int8"
    label = "int8"
    # ONNX Runtime's graph optimizations fuse the first two into the last two
    marker_ops = frozenset(
        {"MatMulInteger", "DynamicQuantizeLinear", "DynamicQuantizeMatMul", "MatMulIntegerToFloat"}
    )
    int8_matmul_ops = frozenset({"MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat"})
    per_batch_scales = True

    def make(
        self, fp32: Path, out: Path, cfg: QuantizeConfig, feeds: Feeds | None = None
    ) -> dict[str, Any]:
        reduce_range = resolve_reduce_range(cfg.reduce_range)
        quantize_dynamic_int8(fp32, out, per_channel=cfg.per_channel, exclude=cfg.exclude,
                              reduce_range=reduce_range)  # fmt: skip
        return {
            "mode": self.name,
            "per_channel": cfg.per_channel,
            "reduce_range": reduce_range,
            "excluded_nodes": excluded_nodes(fp32, cfg.exclude) if cfg.exclude else [],
        }
