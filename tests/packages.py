"""Copies of exported ONNX packages for tests that write files beside a shared export."""

from __future__ import annotations

import shutil
from pathlib import Path

from compressor.layout import graphs_dir, package_root


def copy_package(graph: Path, dest: Path) -> Path:
    """Copy the package (config, tokenizer, manifest and graphs) that holds `graph` to `dest`;
    return the copy's graph folder, where `graph`'s name now lies."""
    return graphs_dir(shutil.copytree(package_root(graph), dest))
