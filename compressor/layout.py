"""The shipped ONNX folder in the Hugging Face hub's layout for ONNX model repos, which
transformers.js and optimum's `ORTModel*.from_pretrained(..., subfolder="onnx")` read as it is:

    <package>/config.json, tokenizer files, manifest.json, README.md (the model card)
    <package>/onnx/model.onnx, model_int8.onnx, model_fp16.onnx, model_q4.onnx, ...

so the package can be pushed to the hub as a model repo. Graphs are found by these two
functions only, so a graph written elsewhere (a flat folder from another tool, with the
tokenizer beside the file) still loads.
"""

from __future__ import annotations

from pathlib import Path

#: the subfolder of a package that holds its graphs (the hub's and transformers.js's name)
GRAPHS = "onnx"


def graphs_dir(package: Path) -> Path:
    """Where a package's graph files go."""
    return Path(package) / GRAPHS


def package_root(graph: Path) -> Path:
    """The folder holding a graph's config and tokenizer: the package above `onnx/` in the
    hub layout, else the graph's own folder (a flat export)."""
    folder = Path(graph).parent
    if folder.name == GRAPHS and (folder.parent / "config.json").is_file():
        return folder.parent
    return folder
