"""ORT format (`.ort`) for ONNX Runtime Mobile, with the operator list a reduced build needs.

Uses ONNX Runtime's own converter; the `.ort` file and its `required_operators.config` are
written next to the source file (the config is what `--include_ops_by_config` of a minimal
ONNX Runtime build reads).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from compressor.errors import UserError


def convert_to_ort(onnx_path: Path) -> dict[str, str]:
    """Convert one .onnx file; return the paths of the .ort file and its operator config."""
    from onnxruntime.tools.convert_onnx_models_to_ort import (
        OptimizationStyle,
        convert_onnx_models_to_ort,
    )
    from onnxruntime_extensions import get_library_path

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise UserError(f"{onnx_path} does not exist — export the model to ONNX first")
    with tempfile.TemporaryDirectory(dir=onnx_path.parent) as tmp:
        source = Path(tmp) / "in" / onnx_path.name
        source.parent.mkdir()
        shutil.copy2(onnx_path, source)
        out = Path(tmp) / "out"
        # the extensions' library lets end-to-end files (tokenizer operators) convert too;
        # their operator config then lists ai.onnx.contrib's BertTokenizer, which a reduced
        # build gets by compiling onnxruntime-extensions in (--use_extensions)
        convert_onnx_models_to_ort(source, out, [OptimizationStyle.Fixed],
                                   custom_op_library_path=Path(get_library_path()))  # fmt: skip
        ort_file = onnx_path.with_suffix(".ort")
        config = onnx_path.with_name(f"{onnx_path.stem}.required_operators.config")
        made_ort = next(out.rglob("*.ort"))
        made_config = next(out.rglob("*.config"))
        shutil.move(made_ort, ort_file)
        shutil.move(made_config, config)
    return {"ort": str(ort_file), "required_operators": str(config)}
