"""Weight-only int4 (MatMulNBits, blockwise symmetric scales): the smallest file; activations
stay fp32. Only MatMuls with constant weights are converted."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from compressor.registry import QUANT_MODES
from exporters.quant import Feeds, QuantMode
from exporters.quant._common import excluded_nodes, written_atomically

if TYPE_CHECKING:
    from compressor.recipe import QuantizeConfig


def quantize_int4_weights(
    onnx_path: Path, out_path: Path, *, block_size: int = 32, exclude: list[str] | None = None
) -> Path:
    """Write the int4 copy of `onnx_path` to `out_path` and return `out_path`; nodes whose
    names match a pattern of `exclude` keep fp32 weights."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    with written_atomically(onnx_path, out_path) as tmp:
        quantizer = MatMulNBitsQuantizer(
            onnx.load(str(onnx_path)),
            bits=4,
            block_size=block_size,
            is_symmetric=True,
            nodes_to_exclude=excluded_nodes(onnx_path, exclude) if exclude else [],
        )
        quantizer.process()
        quantizer.model.save_model_to_file(tmp, use_external_data_format=False)
    return Path(out_path)


@QUANT_MODES.register("int4")
class Int4(QuantMode):
    """For size-bound targets: weights unpacked to fp32 in the kernel, so the arithmetic (and
    the roofline's count of it) stays float."""

    suffix = "int4"
    file_suffix = "q4"
    label = "int4"
    marker_ops = frozenset({"MatMulNBits", "GatherBlockQuantized"})
    float_matmul_ops = frozenset({"MatMulNBits"})

    def make(
        self, fp32: Path, out: Path, cfg: QuantizeConfig, feeds: Feeds | None = None
    ) -> dict[str, Any]:
        quantize_int4_weights(fp32, out, block_size=cfg.int4_block_size, exclude=cfg.exclude)
        return {
            "mode": self.name,
            "block_size": cfg.int4_block_size,
            "excluded_nodes": excluded_nodes(fp32, cfg.exclude) if cfg.exclude else [],
        }
