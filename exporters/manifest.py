"""`manifest.json` at the root of an ONNX package: what each file is, so a deployed copy can be
checked.

One entry per file, keyed by its path from the package root (`onnx/model_int8.onnx`), merged
on every update, so export and quantize stages (or reruns) each add their facts without
erasing the other's. The config and tokenizer files at the root get entries too: a deployed
model read with a different tokenizer is silently wrong.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import onnx

from compressor.atomic import read_json, write_json
from compressor.errors import UserError
from compressor.layout import package_root

MANIFEST = "manifest.json"
MODEL_SUFFIXES = (".onnx", ".ort", ".onnx_data", ".data")
#: files at a package's root that are neither config nor tokenizer
NOT_TOKENIZER = (MANIFEST, "README.md", ".gitattributes")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def onnx_signature(path: Path) -> dict[str, Any]:
    """Opset and input signature; external weights are not loaded, only the graph is needed.

    Public for `.ort` files, which the onnx package cannot read: their converter keeps the
    source's opset and inputs, so those are recorded from the source file.
    """
    model = onnx.load(path, load_external_data=False)
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    inputs = [
        {
            "name": inp.name,
            "dtype": onnx.helper.tensor_dtype_to_np_dtype(inp.type.tensor_type.elem_type).name,
            "shape": [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim],
        }
        for inp in model.graph.input
    ]
    return {"opset": opset, "inputs": inputs}


def _read_manifest(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return read_json(path)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON ({exc}) — delete it and rerun") from exc


def manifest_key(target: Path) -> str:
    """A file's key: its path from its package's root, as the hub and transformers.js name it."""
    target = Path(target)
    return target.relative_to(package_root(target)).as_posix()


def update_manifest(target: Path, **fields: Any) -> dict[str, Any]:
    """Record `target`'s size, sha256 (and ONNX signature) plus `fields` in its package's
    manifest; return the manifest.

    Measured facts are recomputed every time and win over stale or passed-in values.
    """
    target = Path(target)
    folder = package_root(target)
    file_name = manifest_key(target)
    if not target.is_file():
        raise UserError(f"{target} does not exist — write the file before recording it")
    facts: dict[str, Any] = {"size_bytes": target.stat().st_size, "sha256": _sha256(target)}
    if target.suffix == ".onnx":
        facts.update(onnx_signature(target))
    manifest = _read_manifest(folder / MANIFEST)
    manifest[file_name] = {**manifest.get(file_name, {}), **fields, **facts}
    write_json(folder / MANIFEST, manifest)
    return manifest


def record_companions(folder: Path, **fields: Any) -> list[str]:
    """Give every non-model file of a fresh export (config, tokenizer) its own entry; return
    the tokenizer files' names, which every model file of the folder is read with."""
    folder = Path(folder)
    tokenizer_files = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix in MODEL_SUFFIXES or path.name in NOT_TOKENIZER:
            continue
        role = "model config" if path.name == "config.json" else "tokenizer"
        if role == "tokenizer":
            tokenizer_files.append(path.name)
        update_manifest(path, role=role, **fields)
    return tokenizer_files
