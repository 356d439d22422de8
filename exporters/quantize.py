"""Dynamic int8 quantization of an exported ONNX classifier with ONNX Runtime's quantizer.

Settings are the ones our measurements chose: signed int8 weights (unsigned ones ran slower),
per-channel scales (needed to keep predictions faithful) and full range (reduce_range=True
lost fidelity).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path

from onnxruntime.quantization import QuantType, quantize_dynamic

from compressor.errors import UserError


class _DropPreprocessHint(logging.Filter):
    """ORT asks for `quant_pre_process` on every call; its symbolic shape inference fails on
    these exports, so the hint is noise to our users."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Please consider to run pre-processing")


def quantize_dynamic_int8(onnx_path: Path, out_path: Path, *, per_channel: bool = True) -> Path:
    """Write an int8 copy of `onnx_path` to `out_path` and return `out_path`.

    Only the .onnx file is written: keeping it in the fp32 model's folder lets it share that
    folder's tokenizer and config.
    """
    onnx_path, out_path = Path(onnx_path), Path(out_path)
    if not onnx_path.is_file():
        raise UserError(f"{onnx_path} does not exist — export the model to ONNX first")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.stem}.", suffix=".onnx")
    os.close(fd)
    hint_filter = _DropPreprocessHint()
    logging.getLogger().addFilter(hint_filter)
    try:
        quantize_dynamic(
            onnx_path,
            tmp,
            per_channel=per_channel,
            reduce_range=False,
            weight_type=QuantType.QInt8,
        )
        os.replace(tmp, out_path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        logging.getLogger().removeFilter(hint_filter)
    return out_path
