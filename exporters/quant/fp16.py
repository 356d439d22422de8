"""Half precision for GPU execution providers, with the normalisations and the softmax kept in
fp32 (their reductions lose precision in fp16) and fp32 inputs / outputs, so callers feed and
read the same tensors as before."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from compressor.registry import QUANT_MODES
from exporters.quant import Feeds, QuantMode
from exporters.quant._common import written_atomically

if TYPE_CHECKING:
    from compressor.recipe import QuantizeConfig

FP32_OPS = ["LayerNormalization", "SkipLayerNormalization", "Softmax"]


def convert_fp16(onnx_path: Path, out_path: Path, *, keep_fp32: list[str] | None = None) -> Path:
    """Write the fp16 copy of `onnx_path` to `out_path` and return `out_path`."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    with written_atomically(onnx_path, out_path) as tmp:
        model = convert_float_to_float16(
            onnx.load(str(onnx_path)), keep_io_types=True, op_block_list=keep_fp32 or FP32_OPS
        )
        onnx.save(model, tmp)
    return Path(out_path)


@QUANT_MODES.register("fp16")
class Fp16(QuantMode):
    """Float kernels throughout: a benchmark compares its logits, not only its decisions, as it
    does for fp32 files. Its op types are fp32's (only tensor types change), so it has no
    marker ops."""

    suffix = "fp16"
    label = "fp16"
    integer_kernels = False

    def make(
        self, fp32: Path, out: Path, cfg: QuantizeConfig, feeds: Feeds | None = None
    ) -> dict[str, Any]:
        convert_fp16(fp32, out)
        return {"mode": self.name, "kept_fp32": FP32_OPS}
