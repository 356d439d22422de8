"""ONNX Runtime's offline transformer optimizer: attention, LayerNorm, GELU and bias fusions.

On CPU the online `ORT_ENABLE_ALL` optimisation at session start already gives most of the
gain (`make bench-quant` times the optimized file against the fp32 one in the same run); the
offline file matters for GPU execution providers and for inspecting which fusions applied.
Head count and width are detected from the graph, so a pruned model with uneven heads may
fuse wrongly: that is why every optimized file goes through the parity check before it
counts. ORT imports its fusion modules by their bare names (`fusion_attention`, ...), so their
loggers sit outside "onnxruntime.transformers";
the attention fusion warns on every layer of a head-pruned model that its heads' total width
differs from the hidden width, which is true and expected there, so it is silenced too.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from compressor.archs import arch_of
from compressor.atomic import atomic_file
from compressor.errors import UserError
from compressor.layout import package_root


def ort_model_type(onnx_path: Path) -> str:
    """ONNX Runtime's name for the model's fusion patterns, from the architecture spec of the
    config.json at the root of the file's package."""
    config_path = package_root(onnx_path) / "config.json"
    if not config_path.is_file():
        raise UserError(
            f"no config.json for {onnx_path} — keep the exported model's config.json at the "
            "root of its ONNX folder (its model_type picks the optimizer's fusions)"
        )
    return arch_of(json.loads(config_path.read_text(encoding="utf-8"))).ort_model_type


def optimize_transformer(onnx_path: Path, out_path: Path) -> dict[str, int]:
    """Write the fused graph of `onnx_path` to `out_path`; return the count of each fused
    operator (e.g. {"Attention": 6, "SkipLayerNormalization": 12})."""
    from onnxruntime.transformers.optimizer import optimize_model

    if not Path(onnx_path).is_file():
        raise UserError(f"{onnx_path} does not exist — export the model to ONNX first")
    model_type = ort_model_type(onnx_path)
    for name in ("onnxruntime.transformers", "fusion_attention"):
        logging.getLogger(name).setLevel(logging.ERROR)
    model = optimize_model(str(onnx_path), model_type=model_type, num_heads=0, hidden_size=0)
    with atomic_file(Path(out_path)) as tmp:
        model.save_model_to_file(str(tmp), use_external_data_format=False)
    return {op: n for op, n in model.get_fused_operator_statistics().items() if n}
