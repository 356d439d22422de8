"""The files a compress run has made, as evaluation, benchmarks and the report see them:
one place decides their keys, labels and formats."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from compressor.models import resolve_model_dir
from compressor.runfolder import RunFolder


@dataclass(frozen=True)
class Artifact:
    """One model of the run: its report key, human label, format and where it is."""

    key: str
    label: str
    format: str
    path: Path


def run_artifacts(run: RunFolder, teacher_path: str) -> dict[str, Artifact]:
    """key -> artifact, in the order the report lists them: the teacher (and its own int8
    file, the baseline to beat), the PyTorch student, then each ONNX file the run kept (a
    file that failed its gate has no path)."""
    items = [
        Artifact("teacher", "teacher PyTorch", "pytorch", Path(resolve_model_dir(teacher_path))),
        Artifact("student", "student PyTorch", "pytorch", run.path / "model"),
    ]
    if run.done("export"):
        export = run.result("export")
        items.append(Artifact("student_onnx", "student ONNX", "onnx", Path(export["path"])))
        optimized = (export.get("optimized") or {}).get("path")
        if optimized:
            items.append(
                Artifact("student_optimized", "student ONNX optimized", "onnx", Path(optimized))
            )
    baseline = (run.result("teacher_files").get("int8") or {}).get("path")
    if baseline:
        items.insert(1, Artifact("teacher_int8", "teacher ONNX int8", "onnx-int8", Path(baseline)))
    quantized = run.result("quantize")
    if quantized.get("path"):
        mode = quantized.get("quantization", {}).get("mode", "dynamic-int8")
        items.append(
            Artifact(
                quantized.get("key", "student_int8"),
                "student ONNX "
                + quantized.get("label", "int8" if mode == "dynamic-int8" else mode),
                quantized.get("format", "onnx-int8"),
                Path(quantized["path"]),
            )
        )
    return {item.key: item for item in items}
