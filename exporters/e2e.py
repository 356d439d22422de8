"""End-to-end ONNX files: raw sentences in, token ids, logits and the label out, so an app
ships one file and no tokenizer code.

The tokenizer is onnxruntime-extensions' `BertTokenizer` operator (WordPiece, with the
vocabulary, lower-casing and truncation of the Hugging Face tokenizer the model was trained
with). That operator reads one sentence (or one pair) per call, so the batch is an ONNX `Loop`
over the sentences that pads each to `max_length`; the batch is then cut to its longest
sentence and given the attention mask, which is what the Python tokenizer's
`padding="longest"` produces. The model graph follows unchanged (`onnx.compose`), then an
`ArgMax` for the label. A runtime needs the extensions' custom-op library
(`onnxruntime_extensions.get_library_path()` in Python; `onnxruntime-extensions` packages for
other languages); the manifest says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from compressor.data import Split
from compressor.errors import UserError

CONTRIB = "ai.onnx.contrib"
#: graph inputs / outputs of an end-to-end file
TEXT, LABEL, LOGITS, IDS = "text", "label", "logits", "input_ids"
_PREFIX = "tok/"


def e2e_path(graph: Path) -> Path:
    """`model_int8.onnx` -> `model_int8_e2e.onnx`, beside it."""
    return graph.with_name(f"{graph.stem}_e2e.onnx")


def _tokenizer_node(tokenizer: Any, max_length: int) -> onnx.NodeProto:
    """The extensions' own converter of the Hugging Face tokenizer into its operator, so its
    vocabulary and flags are read the way the extensions expect."""
    from onnxruntime_extensions import gen_processing_models

    supported = ("BertTokenizer", "BertTokenizerFast", "DistilBertTokenizer",
                 "DistilBertTokenizerFast")  # fmt: skip
    if type(tokenizer).__name__ not in supported:
        raise UserError(
            f"no end-to-end file for a {type(tokenizer).__name__}: only BERT's WordPiece "
            "tokenizer is put into the graph (onnxruntime-extensions' BertTokenizer)"
        )
    # no max_length: with it, onnxruntime-extensions 0.15.2's operator corrupted memory on the
    # sentences it truncated inside a Loop (lengths of 196 and 221 at max_length 64, then a
    # segmentation fault); the body truncates with plain ONNX ops instead
    settings = {"strip_accents": int(_strips_accents(tokenizer))}
    pre = gen_processing_models(tokenizer, pre_kwargs=settings)[0]
    [node] = [n for n in pre.graph.node if n.op_type == "BertTokenizer"]
    return node


def _strips_accents(tokenizer: Any) -> bool:
    """What the Hugging Face tokenizer really does: its BERT normalizer strips accents when
    told to, or, when left unset, whenever it lower-cases; the extensions' converter reads
    only the explicit setting, and would keep the accents of "amélie" and emit [UNK]."""
    import json

    backend = getattr(tokenizer, "backend_tokenizer", None)
    normalizer = json.loads(backend.to_str()).get("normalizer") or {} if backend else {}
    if normalizer.get("type") == "BertNormalizer":
        strip = normalizer.get("strip_accents")
        return bool(normalizer.get("lowercase")) if strip is None else bool(strip)
    strip = tokenizer.init_kwargs.get("strip_accents")
    return bool(tokenizer.init_kwargs.get("do_lower_case")) if strip is None else bool(strip)


def _const(name: str, values: list[int]) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=helper.make_tensor(
        name, TensorProto.INT64, [len(values)], values))  # fmt: skip


def _loop_body(token_node: onnx.NodeProto, max_length: int, pad_id: int) -> onnx.GraphProto:
    """One sentence: tokenized, truncated as Hugging Face truncates one sentence (its first
    `max_length` - 1 ids, then the closing [SEP]), padded to `max_length`; its length beside."""
    p = _PREFIX
    tokenize = helper.make_node("BertTokenizer", [p + "sentence"],
                                [p + "ids", p + "types", p + "mask", p + "offsets"],
                                domain=CONTRIB, name=p + "BertTokenizer")  # fmt: skip
    tokenize.attribute.extend(token_node.attribute)
    nodes = [
        _const(p + "zero", [0]),
        _const(p + "max", [max_length]),
        helper.make_node("Unsqueeze", [p + "i", p + "zero"], [p + "index"]),
        helper.make_node("Gather", [TEXT, p + "index"], [p + "sentence"], axis=0),
        tokenize,
        helper.make_node("Shape", [p + "ids"], [p + "full"]),
        helper.make_node("Min", [p + "full", p + "max"], [p + "kept"]),
        _const(p + "one", [1]),
        helper.make_node("Sub", [p + "kept", p + "one"], [p + "head_end"]),
        helper.make_node("Slice", [p + "ids", p + "zero", p + "head_end", p + "zero"],
                         [p + "head"]),
        _const(p + "last", [-1]),
        helper.make_node("Slice", [p + "ids", p + "last", p + "full", p + "zero"], [p + "sep"]),
        helper.make_node("Concat", [p + "head", p + "sep"], [p + "truncated"], axis=0),
        helper.make_node("Shape", [p + "truncated"], [p + "length"]),
        helper.make_node("Sub", [p + "max", p + "length"], [p + "room"]),
        helper.make_node("Concat", [p + "zero", p + "room"], [p + "pads"], axis=0),
        helper.make_node("Constant", [], [p + "pad_id"],
                         value=helper.make_tensor(p + "pad_id", TensorProto.INT64, [], [pad_id])),
        helper.make_node("Pad", [p + "truncated", p + "pads", p + "pad_id"], [p + "padded"]),
        helper.make_node("Identity", [p + "cond_in"], [p + "cond_out"]),
    ]  # fmt: skip
    return helper.make_graph(
        nodes,
        "sentence",
        [helper.make_tensor_value_info(p + "i", TensorProto.INT64, []),
         helper.make_tensor_value_info(p + "cond_in", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info(p + "cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info(p + "padded", TensorProto.INT64, [max_length]),
         helper.make_tensor_value_info(p + "length", TensorProto.INT64, [1])],
    )  # fmt: skip


def tokenizer_model(
    tokenizer: Any, max_length: int, opset: int, ir_version: int
) -> onnx.ModelProto:
    """Strings [batch] -> input_ids, attention_mask, token_type_ids [batch, longest]."""
    p = _PREFIX
    body = _loop_body(_tokenizer_node(tokenizer, max_length), max_length, tokenizer.pad_token_id)
    nodes = [
        helper.make_node("Shape", [TEXT], [p + "batch"]),
        helper.make_node("Squeeze", [p + "batch"], [p + "trips"]),
        helper.make_node("Constant", [], [p + "true"],
                         value=helper.make_tensor(p + "true", TensorProto.BOOL, [], [True])),
        helper.make_node("Loop", [p + "trips", p + "true"], [p + "all_ids", p + "lengths2d"],
                         body=body),
        _const(p + "flat", [-1]),
        helper.make_node("Reshape", [p + "lengths2d", p + "flat"], [p + "lengths"]),
        helper.make_node("ReduceMax", [p + "lengths"], [p + "longest"], keepdims=1),
        _const(p + "start", [0]),
        _const(p + "axis", [1]),
        helper.make_node("Slice", [p + "all_ids", p + "start", p + "longest", p + "axis"], [IDS]),
        helper.make_node("Squeeze", [p + "longest"], [p + "longest0"]),
        helper.make_node("Constant", [], [p + "zero0"],
                         value=helper.make_tensor(p + "zero0", TensorProto.INT64, [], [0])),
        helper.make_node("Constant", [], [p + "one0"],
                         value=helper.make_tensor(p + "one0", TensorProto.INT64, [], [1])),
        helper.make_node("Range", [p + "zero0", p + "longest0", p + "one0"], [p + "positions"]),
        _const(p + "rows", [0]),
        helper.make_node("Unsqueeze", [p + "positions", p + "rows"], [p + "positions2d"]),
        helper.make_node("Unsqueeze", [p + "lengths", p + "axis"], [p + "lengths_col"]),
        helper.make_node("Less", [p + "positions2d", p + "lengths_col"], [p + "inside"]),
        helper.make_node("Cast", [p + "inside"], ["attention_mask"], to=TensorProto.INT64),
        helper.make_node("Shape", [IDS], [p + "shape"]),
        helper.make_node("ConstantOfShape", [p + "shape"], ["token_type_ids"],
                         value=helper.make_tensor(p + "type0", TensorProto.INT64, [1], [0])),
    ]  # fmt: skip
    graph = helper.make_graph(
        nodes,
        "tokenizer",
        [helper.make_tensor_value_info(TEXT, TensorProto.STRING, ["batch"])],
        [helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "sequence"])
         for name in (IDS, "attention_mask", "token_type_ids")],
    )  # fmt: skip
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(CONTRIB, 1)]
    )
    model.ir_version = ir_version
    return model


def build_e2e(graph: Path, tokenizer: Any, max_length: int) -> Path:
    """The end-to-end file of `graph` beside it (written whole, then renamed)."""
    from onnx import compose

    from compressor.atomic import atomic_file

    model = onnx.load(str(graph))
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    pre = tokenizer_model(tokenizer, max_length, opset, model.ir_version)
    wanted = {i.name for i in model.graph.input}
    io_map = [(name, name) for name in (IDS, "attention_mask", "token_type_ids") if name in wanted]
    merged = compose.merge_models(pre, model, io_map=io_map, prefix2="model/",
                                  outputs=[IDS, "model/" + LOGITS])  # fmt: skip
    merged.graph.node.append(helper.make_node("Identity", ["model/" + LOGITS], [LOGITS]))
    merged.graph.node.append(helper.make_node("ArgMax", [LOGITS], [LABEL], axis=1, keepdims=0))
    outputs = {o.name: o for o in merged.graph.output}
    del merged.graph.output[:]
    merged.graph.output.extend([
        helper.make_tensor_value_info(LOGITS, TensorProto.FLOAT, ["batch", None]),
        helper.make_tensor_value_info(LABEL, TensorProto.INT64, ["batch"]),
        outputs[IDS],
    ])  # fmt: skip
    onnx.checker.check_model(merged)
    target = e2e_path(graph)
    with atomic_file(target) as tmp:
        onnx.save(merged, str(tmp))
    return target


def run_e2e(sess: Any, texts: list[str]) -> dict[str, np.ndarray]:
    """logits, label and input_ids of one batch of sentences."""
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {TEXT: np.array(texts, dtype=object)}), strict=True))


def e2e_checked(
    graph: Path, dev: Split, *, max_length: int, tolerance: float, recipe_hash: str
) -> dict[str, Any]:
    """The end-to-end file of `graph`, gated on every dev sentence: its token ids must equal
    the Python tokenizer's and its logits the model file's (fed those same ids in the same
    batches) within `tolerance`. A file that fails is deleted and reported with path None;
    a tokenizer or task the graph cannot hold is reported as skipped."""
    import onnxruntime_extensions

    from compressor.inference import DEFAULT_BATCH, batch_indices, onnx_session
    from compressor.layout import package_root
    from compressor.models import load_tokenizer
    from exporters.artifacts import record_dev_accuracy
    from exporters.manifest import manifest_key, update_manifest

    if dev.pairs is not None:
        why = "sentence pairs: the end-to-end file takes one sentence per row"
        return {"path": None, "source": str(graph), "skipped": why}
    tokenizer = load_tokenizer(package_root(graph))
    try:
        target = build_e2e(graph, tokenizer, max_length)
    except UserError as exc:
        return {"path": None, "source": str(graph), "skipped": str(exc)}
    e2e, model = onnx_session(target), onnx_session(graph)
    wanted = [i.name for i in model.get_inputs()]
    wrong_ids, max_diff = 0, 0.0
    for idx in batch_indices(dev.texts, None, DEFAULT_BATCH):
        texts = [dev.texts[i] for i in idx]
        out = run_e2e(e2e, texts)
        enc = tokenizer(texts, padding="longest", truncation=True, max_length=max_length,
                        return_tensors="np")  # fmt: skip
        if out[IDS].shape != enc[IDS].shape:
            wrong_ids += len(idx)
            continue
        wrong_ids += int((out[IDS] != enc[IDS]).any(axis=1).sum())
        reference = model.run(None, {k: enc[k].astype(np.int64) for k in wanted})[0]
        max_diff = max(max_diff, float(np.abs(out[LOGITS] - reference).max()))
    gate = {"n": len(dev), "token_id_mismatches": wrong_ids, "max_abs_diff": max_diff,
            "tolerance": tolerance, "passed": wrong_ids == 0 and max_diff <= tolerance}  # fmt: skip
    if not gate["passed"]:
        target.unlink()
        return {"path": None, "source": str(graph), "gate": gate}
    runtime = {"custom_op_library": "onnxruntime-extensions",
               "version": onnxruntime_extensions.__version__, "domain": CONTRIB,
               "ops": ["BertTokenizer"],
               "load": "SessionOptions.register_custom_ops_library("
                       "onnxruntime_extensions.get_library_path())"}  # fmt: skip
    update_manifest(target, role="end-to-end: raw sentences in, logits and label out",
                    source_model=manifest_key(graph), recipe_hash=recipe_hash, runtime=runtime,
                    gate=gate)  # fmt: skip
    figures = record_dev_accuracy(target, dev, max_length=max_length)
    return {"path": str(target), "source": str(graph), "gate": gate, **figures,
            "size_bytes": target.stat().st_size, "runtime": runtime}  # fmt: skip
