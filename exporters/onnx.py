"""PyTorch folder -> ONNX by the student kind that saved it (optimum's exporter for HF
transformers), written into a folder that is replaced whole."""

from __future__ import annotations

from pathlib import Path

from compressor.atomic import atomic_dir
from compressor.models import check_model_folder
from compressor.students import kind_of


def export_onnx(model_dir: Path, out_dir: Path, *, opset: int = 18) -> Path:
    """Export a sequence classifier to `out_dir/model.onnx` and return that path.

    `out_dir` is replaced whole (tokenizer and config copied in by the exporter), so it never
    mixes files of two exports. `exporters.parity` checks the file on real sentences.
    """
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    check_model_folder(model_dir)
    kind = kind_of(model_dir)
    with atomic_dir(out_dir) as tmp:
        written = kind.export_onnx(model_dir, tmp, opset)
    return out_dir / written.name
