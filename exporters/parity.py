"""Does an exported or quantized artifact still compute what the PyTorch model computes?

Checked on real sentences of varied lengths: padding and truncation paths are exactly where
exports break, and dummy inputs of one length never exercise them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from compressor.errors import UserError
from compressor.inference import predict_logits


@dataclass
class ParityResult:
    """Both the raw logit gap and the decision agreement: int8 files are judged on the second."""

    max_abs_diff: float
    argmax_agreement: float
    n: int
    tolerance: float
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: an infinite tolerance (argmax-only gate) becomes None, not `Infinity`."""
        data = asdict(self)
        if not math.isfinite(self.tolerance):
            data["tolerance"] = None
        return data


def check_parity(
    reference: Path,
    candidate: Path,
    texts: list[str],
    text_pairs: list[str] | None = None,
    *,
    tolerance: float = 1e-3,
    min_agreement: float = 1.0,
    max_length: int = 128,
) -> ParityResult:
    """Compare the logits of two artifacts on the same inputs.

    Each artifact is read with the tokenizer stored next to it, so the check covers the
    artifact as it will be deployed, tokenizer files included. Sentences split into words
    (token classification) are compared word by word.
    """
    ref = predict_logits(Path(reference), texts, text_pairs, max_length=max_length)
    cand = predict_logits(Path(candidate), texts, text_pairs, max_length=max_length)
    if ref.shape != cand.shape:
        raise UserError(
            f"{reference} gives {ref.shape[1]} classes but {candidate} gives {cand.shape[1]} — "
            "compare artifacts of the same model"
        )
    seen = ~np.isnan(ref).any(axis=1)  # words past max_length: neither artifact saw them
    ref, cand = ref[seen], cand[seen]
    max_abs_diff = float(np.abs(ref - cand).max())
    agreement = float(np.mean(ref.argmax(axis=1) == cand.argmax(axis=1)))
    return ParityResult(
        max_abs_diff=max_abs_diff,
        argmax_agreement=agreement,
        n=len(texts),
        tolerance=tolerance,
        passed=max_abs_diff <= tolerance and agreement >= min_agreement,
    )
