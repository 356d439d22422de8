"""What several modes share: atomic output with ONNX Runtime's pre-processing hint silenced,
the recipe's node exclusions, and the reduce_range decision for int8 weights."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from pathlib import Path

from compressor.atomic import atomic_file
from compressor.errors import UserError


class _DropPreprocessHint(logging.Filter):
    """ORT asks for `quant_pre_process` on every call; its symbolic shape inference fails on
    these exports, so the hint is noise to our users."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Please consider to run pre-processing")


@contextlib.contextmanager
def written_atomically(onnx_path: Path, out_path: Path) -> Iterator[str]:
    """A temporary path beside `out_path`, renamed onto it if the body succeeds, with ORT's
    pre-processing hint silenced."""
    if not Path(onnx_path).is_file():
        raise UserError(f"{onnx_path} does not exist — export the model to ONNX first")
    hint_filter = _DropPreprocessHint()
    logging.getLogger().addFilter(hint_filter)
    try:
        with atomic_file(Path(out_path)) as tmp:
            yield str(tmp)
    finally:
        logging.getLogger().removeFilter(hint_filter)


def excluded_nodes(onnx_path: Path, patterns: list[str]) -> list[str]:
    """Names of the graph's nodes that match any of the recipe's regular expressions."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    return [n.name for n in graph.node if any(re.search(p, n.name) for p in patterns)]


VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
ReduceRange = bool | str


def cpu_has_vnni(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this x86 CPU has an int8 dot-product instruction (VNNI / AMX). Without one,
    ORT's u8s8 kernels (AVX2 vpmaddubsw) add pairs of products in saturating int16, and wide
    8-bit weights overflow; on an AVX2-only AMD EPYC the tiny BERT of tests/test_exporters.py
    fell under the 90 % agreement gate without reduce_range."""
    if not cpuinfo.is_file():
        return True
    flags = set(cpuinfo.read_text(encoding="utf-8", errors="replace").split())
    return any(flag in flags for flag in VNNI_FLAGS) or "avx2" not in flags


def resolve_reduce_range(setting: ReduceRange) -> bool:
    """`auto`: 7-bit weights only where the CPU would saturate 8-bit ones (ORT's advice for
    machines without VNNI); elsewhere they would only cost precision."""
    return (not cpu_has_vnni()) if setting == "auto" else bool(setting)
