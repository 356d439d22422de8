"""Quantization modes: one module per mode, each a `QuantMode` registered in
`compressor.registry.QUANT_MODES` under the name a recipe's `quantize.mode` gives.

A mode knows everything that differs between modes: how it makes its file from the fp32
ONNX file, the file's name, how reports label it, what the manifest records, whether it
needs calibration sentences, the gate it is judged on, and what benchmarks must know about
its operators. Everything else (`exporters.artifacts.quantize_checked`, and through its
result the pipeline's report; the roofline; the emulator) asks the mode, so a new mode is one
new module here plus its test (tests/test_quant_modes.py lists each mode's names).

The registry imports this package when a recipe is validated: modules here keep ONNX and
ONNX Runtime imports inside their functions, and helpers live in underscore modules, which
the registry does not import as modes.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

import numpy as np

from compressor.registry import QUANT_MODES

if TYPE_CHECKING:
    from compressor.data import Split
    from compressor.recipe import QuantizeConfig
    from exporters.parity import ParityResult

# tokenized training batches in the ONNX file's input names (exporters.artifacts.calibration_feeds)
Feeds = list[dict[str, np.ndarray]]


class QuantMode(ABC):
    """One way of making a smaller or faster file from the fp32 export; subclasses set the
    class attributes and implement `make`."""

    #: the root of `format` and `key`, and of the file's name unless `file_suffix` is set
    suffix: ClassVar[str]
    #: file name `<stem>_<file_suffix>.onnx` beside the fp32 file, where transformers.js's dtype
    #: names it otherwise (its `q4` reads `model_q4.onnx`)
    file_suffix: ClassVar[str | None] = None
    #: how reports name the file after "student ONNX"
    label: ClassVar[str]
    #: `make` receives tokenized training batches (`feeds`) only when this is set
    needs_calibration: ClassVar[bool] = False
    #: op types that only this mode's files contain: how a benchmark tells which mode made a file
    marker_ops: ClassVar[frozenset[str]] = frozenset()
    #: integer kernels round differently per instruction set, so a benchmark comparing the file
    #: across machines judges it on the decision (argmax) and not on the logits
    integer_kernels: ClassVar[bool] = True
    #: op types of its files that multiply matrices at the int8 rate (for the roofline)
    int8_matmul_ops: ClassVar[frozenset[str]] = frozenset()
    #: op types of its files that multiply matrices at the float rate besides MatMul / Gemm
    float_matmul_ops: ClassVar[frozenset[str]] = frozenset()
    #: its MatMuls whose operands both come out of DequantizeLinear run as int8 (ONNX Runtime
    #: fuses the QDQ pattern into an integer kernel when it loads the file)
    qdq_matmuls: ClassVar[bool] = False
    #: activation scales computed from each batch (padding included) at run time, so a
    #: sentence's label can depend on the batch it is scored in
    per_batch_scales: ClassVar[bool] = False

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def format(self) -> str:
        """The report's format string; it follows the suffix, so a file's name and its report
        row cannot disagree."""
        return "onnx-" + self.suffix.replace("_", "-")

    @property
    def key(self) -> str:
        """The report's key for the student's file of this mode."""
        return f"student_{self.suffix}"

    def names(self) -> dict[str, str]:
        """label, format and key: what a caller needs to list the file in a report."""
        return {"label": self.label, "format": self.format, "key": self.key}

    def path_for(self, fp32: Path) -> Path:
        """Beside the fp32 file, under the name transformers.js's dtype option looks for."""
        return fp32.with_name(f"{fp32.stem}_{self.file_suffix or self.suffix}.onnx")

    @abstractmethod
    def make(
        self, fp32: Path, out: Path, cfg: QuantizeConfig, feeds: Feeds | None = None
    ) -> dict[str, Any]:
        """Write the file to `out` atomically; return the settings the manifest records."""

    def check(
        self, reference: Path, candidate: Path, probe: Split, *, cfg: QuantizeConfig,
        max_length: int,
    ) -> ParityResult:  # fmt: skip
        """Quantized logits differ from fp32 by design, so the gate is prediction agreement
        (`cfg.min_agreement`); the max |difference| is only reported."""
        from exporters.parity import check_parity

        return check_parity(reference, candidate, probe.texts, probe.pairs, tolerance=math.inf,
                            min_agreement=cfg.min_agreement, max_length=max_length)  # fmt: skip


def get_mode(name: str) -> QuantMode:
    """The registered mode, or a UserError listing the known names."""
    return cast(type[QuantMode], QUANT_MODES.get(name))(name)


def all_modes() -> list[QuantMode]:
    """Every registered mode, for benchmarks that must recognise any mode's operators."""
    return [cast(type[QuantMode], cls)(name) for name, cls in QUANT_MODES.items()]


def detect(op_types: Iterable[str]) -> QuantMode | None:
    """The mode whose marker ops a graph with these op types contains, if any."""
    ops = set(op_types)
    return next((mode for mode in all_modes() if mode.marker_ops & ops), None)


def scales_per_batch(path: Path) -> bool:
    """Whether a file's outputs depend on the batch it runs in (`QuantMode.per_batch_scales`);
    an .ort file is judged by the .onnx file it was converted from, which lies beside it."""
    import onnx

    source = Path(path).with_suffix(".onnx")
    if not source.is_file():
        return False
    graph = onnx.load(str(source), load_external_data=False).graph
    mode = detect(node.op_type for node in graph.node)
    return mode is not None and mode.per_batch_scales
