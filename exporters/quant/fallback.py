"""`quantize.max_drop`: a quantized file that loses more than the limit against its fp32 file
gets nodes back in fp32, the most costly first, until it is within the limit.

What Intel Neural Compressor's accuracy-aware tuning does for one file, reported per node:
first every quantized node is put back in fp32 alone (one file each) and scored, ranking the
nodes by the accuracy that fallback recovers (ties broken by the logits' distance to fp32);
then nodes are kept in fp32 in that order, one more per file, until the drop is within the
limit. Accuracy is measured on labelled training sentences held for it, not on dev, so the
dev figure the run reports is not the one the search tuned on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from compressor.data import Split
from compressor.layout import package_root

# node types the int8 and int4 quantizers rewrite: the candidates for fp32 fallback
QUANTIZED_OPS = frozenset({"MatMul", "Gemm", "Conv", "LSTM", "Attention", "Gather"})


def candidates(fp32: Path) -> list[str]:
    """Nodes of the fp32 graph a quantizer may rewrite, in graph order."""
    import onnx

    graph = onnx.load(str(fp32), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    return [
        n.name
        for n in graph.node
        if n.name and n.op_type in QUANTIZED_OPS and any(i in initializers for i in n.input)
    ]


def exact(name: str) -> str:
    """A node name as an exclusion pattern that matches it alone."""
    return f"^{re.escape(name)}$"


def within_max_drop(
    fp32: Path,
    held: Split,
    *,
    limit: float,
    make: Callable[[list[str]], dict[str, Any]],
    target: Path,
    max_length: int,
) -> dict[str, Any]:
    """Make the file with `make(extra exclusions)` until its accuracy on `held` is within
    `limit` points of `fp32`'s; return what was measured and kept. `target` is where `make`
    writes."""
    from compressor.inference import predict_logits

    def scored(path: Path) -> tuple[float, np.ndarray]:
        logits = predict_logits(path, held.texts, held.pairs, max_length=max_length,
                                tokenizer_dir=package_root(fp32))  # fmt: skip
        return float(np.mean(logits.argmax(axis=1) == np.asarray(held.labels))), logits

    reference, reference_logits = scored(fp32)
    settings = make([])
    first, _ = scored(target)
    record: dict[str, Any] = {
        "limit_points": limit,
        "examples": len(held),
        "fp32_accuracy": reference,
        "accuracy_before": first,
        "size_mb_before": target.stat().st_size / 2**20,
        "kept_fp32": [],
    }
    accuracy = first
    if 100 * (reference - first) > limit:
        ranking = []
        for node in candidates(fp32):
            make([exact(node)])
            acc, logits = scored(target)
            ranking.append((-acc, float(np.mean((logits - reference_logits) ** 2)), node))
        ranking.sort()
        record["sensitivity"] = [
            {"node": node, "accuracy_with_node_in_fp32": -neg, "logit_mse": mse}
            for neg, mse, node in ranking
        ]
        kept: list[str] = []
        for _neg, _mse, node in ranking:
            kept.append(node)
            settings = make([exact(n) for n in kept])
            accuracy, _ = scored(target)
            if 100 * (reference - accuracy) <= limit:
                break
        record["kept_fp32"] = kept
    record |= {
        "accuracy_after": accuracy,
        "drop_points": round(100 * (reference - accuracy), 3),
        "within_limit": 100 * (reference - accuracy) <= limit,
        "size_mb_after": target.stat().st_size / 2**20,
    }
    return settings | {"max_drop": record}
