"""compressor: distil, prune, quantize, export and benchmark transformer classifiers."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Prediction", "Predictor", "__version__"]


def __getattr__(name: str) -> Any:
    """`from compressor import Predictor` loads the prediction API on first use: `import
    compressor` (every CLI command, `--help` included) stays free of torch and ONNX Runtime."""
    if name in ("Prediction", "Predictor"):
        from compressor import predict

        return getattr(predict, name)
    raise AttributeError(f"module 'compressor' has no attribute {name!r}")
