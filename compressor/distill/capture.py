"""Q/K/V capture, where the distillation losses have always imported it from.

The hooks run inside the transformer student kind's adaptor (`compressor.students`), a
layer below distillation, so they live there; the losses and Meta-KD keep reading
`LayerQKV` under this name.
"""

from __future__ import annotations

from compressor.students import LayerQKV, capture_qkv, qkv_modules

__all__ = ["LayerQKV", "capture_qkv", "qkv_modules"]
