"""PyTorch folder -> ONNX through optimum's exporter, so every architecture optimum knows works
without our own export code (pruned heads and narrower FFNs included: they are plain configs)."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from optimum.exporters.onnx import main_export

from compressor.atomic import atomic_dir
from compressor.models import check_model_folder


def export_onnx(model_dir: Path, out_dir: Path, *, opset: int = 18) -> Path:
    """Export a sequence classifier to `out_dir/model.onnx` and return that path.

    `out_dir` is replaced whole (tokenizer and config copied in by optimum), so it never mixes
    files of two exports. Batch and sequence axes stay dynamic. optimum's own validation is
    skipped: `exporters.parity` checks on real sentences, which random dummy inputs do not.
    """
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    check_model_folder(model_dir)
    with atomic_dir(out_dir) as tmp, warnings.catch_warnings():
        # transformers' mask code trips the tracer's constant warning on every export; a trace
        # that really baked in a shape would fail the varied-length parity check instead.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        main_export(
            str(model_dir),
            tmp,
            task="text-classification",
            opset=opset,
            do_validation=False,
            local_files_only=True,
            library_name="transformers",
        )
    return out_dir / "model.onnx"
