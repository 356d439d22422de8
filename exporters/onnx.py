"""PyTorch folder -> ONNX by the student kind that saved it (optimum's exporter for HF
transformers), written into a package folder in the hub's layout (`compressor.layout`) that
is replaced whole."""

from __future__ import annotations

from pathlib import Path

from compressor.atomic import atomic_dir
from compressor.layout import graphs_dir
from compressor.models import check_model_folder
from compressor.students import kind_of

#: the graph and its external weights, which must stay side by side
GRAPH_SUFFIXES = (".onnx", ".onnx_data", ".data")


def export_onnx(model_dir: Path, out_dir: Path, *, opset: int = 18) -> Path:
    """Export a sequence classifier to `out_dir/onnx/model.onnx` and return that path.

    `out_dir` is replaced whole (tokenizer and config at its root, as the kind's exporter
    leaves them beside the graph), so it never mixes files of two exports.
    `exporters.parity` checks the file on real sentences.
    """
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    check_model_folder(model_dir)
    kind = kind_of(model_dir)
    with atomic_dir(out_dir) as tmp:
        written = kind.export_onnx(model_dir, tmp, opset)
        graphs_dir(tmp).mkdir()
        for graph in [p for p in tmp.iterdir() if p.suffix in GRAPH_SUFFIXES]:
            graph.rename(graphs_dir(tmp) / graph.name)
    return graphs_dir(out_dir) / written.name
