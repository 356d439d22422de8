"""`quantize.max_drop`: a quantized file that disagrees with its fp32 file by more than the
limit allows gets nodes back in fp32, the most costly first, until it is within it.

What Intel Neural Compressor's accuracy-aware tuning does for one file, reported per node:
first every quantized node is put back in fp32 alone (one file each) and scored, ranking the
nodes by how much of the fp32 file's output that fallback restores (ties broken by the
logits' distance to fp32); then nodes are kept in fp32 in that order, one more per file,
until the file is within the limit.

The measure is the disagreement with the fp32 file, in points, by the task's own metric with
the fp32 file's predictions as the gold labels, not the drop against the real labels. For a
classifier that is the share of held sentences whose label changed: it bounds the accuracy
drop on them whatever their gold labels, and the drop alone hid flips that cancel. On the
demo teacher, files whose accuracy drop on 512 training sentences was within 0.5 lost 1.03
points on dev while agreeing with PyTorch on 97.7 % of it (`make bench-quant` at b08f4d5).
For a tagger it is 100 minus the entity F1 against the fp32 file's entities: a share of
changed tags would mostly count O words that no entity F1 reads, and one changed tag can
split an entity. The held sentences are training sentences, not dev, so the dev figure the
run reports is not the one the search tuned on; both the task's figure against the real
labels and the disagreement are recorded.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from compressor.data import Split
from compressor.layout import package_root
from compressor.progress import LoggedProgress, LogLine
from compressor.tasks import task_named

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
    """Make the file with `make(extra exclusions)` until it disagrees with `fp32` on `held`
    by at most `limit` points; return what was measured and kept. `target` is where `make`
    writes. The "accuracy" fields hold the task's main figure (named by "metric")."""
    from compressor.inference import label_names, predict_logits, predictions

    kind, names = task_named(held.task), label_names(fp32)

    def scored(path: Path) -> tuple[float, np.ndarray]:
        logits = predict_logits(path, held.texts, held.pairs, max_length=max_length,
                                tokenizer_dir=package_root(fp32))  # fmt: skip
        return kind.score(predictions(logits), held.labels, names)["score"], logits

    reference, reference_logits = scored(fp32)
    fp32_labels = kind.as_labels(predictions(reference_logits), held.labels)

    def changed(logits: np.ndarray) -> float:
        """Points of disagreement with the fp32 file, by the task's metric."""
        return round(100 * (1 - kind.score(predictions(logits), fp32_labels, names)["score"]), 3)

    settings = make([])
    accuracy, first_logits = scored(target)
    gap = changed(first_logits)
    record: dict[str, Any] = {
        "limit_points": limit,
        "metric": kind.metric,
        "examples": len(held),
        "fp32_accuracy": reference,
        "accuracy_before": accuracy,
        "changed_points_before": gap,
        "size_mb_before": target.stat().st_size / 2**20,
        "kept_fp32": [],
    }
    if gap > limit:
        ranking = []
        nodes = candidates(fp32)
        with LoggedProgress() as progress:  # a file per node: minutes on a 6-layer model
            task = progress.add_task(f"max_drop: each of {len(nodes)} nodes alone in fp32",
                                     total=len(nodes), log=LogLine(items="nodes"))  # fmt: skip
            for node in nodes:
                make([exact(node)])
                acc, logits = scored(target)
                mse = float(np.mean((logits - reference_logits) ** 2))
                ranking.append((changed(logits), mse, -acc, node))
                progress.advance(task)
        ranking.sort()
        record["sensitivity"] = [
            {"node": node, "changed_points_with_node_in_fp32": points,
             "accuracy_with_node_in_fp32": -neg, "logit_mse": mse}
            for points, mse, neg, node in ranking
        ]  # fmt: skip
        kept: list[str] = []
        with LoggedProgress() as progress:
            task = progress.add_task("max_drop: nodes kept in fp32, costliest first",
                                     total=len(ranking), log=LogLine(items="nodes"))  # fmt: skip
            for *_, node in ranking:
                kept.append(node)
                settings = make([exact(n) for n in kept])
                accuracy, logits = scored(target)
                gap = changed(logits)
                progress.advance(task)
                if gap <= limit:
                    break
        record["kept_fp32"] = kept
    record |= {
        "accuracy_after": accuracy,
        "drop_points": round(100 * (reference - accuracy), 3),
        "changed_points_after": gap,
        "within_limit": gap <= limit,
        "size_mb_after": target.stat().st_size / 2**20,
    }
    return settings | {"max_drop": record}
