"""Where a run is timed: `cpu` and `cuda` measure here, `arm` measures, emulates or estimates.

Every target returns one dict for the run's state with `target`, `mode` ("measured",
"emulated", "estimated" or "skipped") and its figures, so a report can never mix an estimate
with a measurement without saying which is which.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Artifacts:
    """The files a benchmark compares: the teacher and the student, PyTorch and ONNX."""

    teacher_dir: Path
    teacher_onnx: Path
    student_dir: Path
    student_onnx: Path | None = None
    quantized_label: str | None = None
    quantized: Path | None = None
    optimized: Path | None = None

    def onnx_files(self) -> dict[str, Path]:
        """label -> ONNX file, for targets that only run ONNX (estimates, emulation)."""
        files = {"teacher ONNX": self.teacher_onnx}
        if self.student_onnx is not None:
            files["student ONNX"] = self.student_onnx
        if self.quantized is not None and self.quantized_label:
            files[self.quantized_label] = self.quantized
        return files
