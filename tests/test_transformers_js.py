"""The shipped package loads in the tools its hub layout is for, as it is: transformers.js in
Node (the int8 and fp32 graphs, on real SST-2 dev sentences) and optimum's
`ORTModelForSequenceClassification`, each giving the labels ONNX Runtime gives in Python.

The Node side needs `node` and `npm`; tests/js pins transformers.js and its lockfile, and the
first run installs it into tests/js/node_modules (`npm ci --ignore-scripts`: onnxruntime-node's
CPU binaries are in its npm tarball, its install script only fetches the CUDA ones).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from transformers import BertForSequenceClassification, BertTokenizerFast

from compressor.inference import predict_logits
from compressor.layout import graphs_dir
from compressor.recipe import QuantizeConfig
from exporters.onnx import export_onnx
from exporters.quant import get_mode
from tests.conftest import save_variant, sst2_rows

JS_DIR = Path(__file__).resolve().parent / "js"
INSTALL = "npm ci --ignore-scripts --no-audit --no-fund"
DEV = [text for text, _ in sst2_rows("dev", limit=64)]
MAX_LENGTH = 128
ID2LABEL = {0: "negative", 1: "positive"}
# what transformers.js's `dtype` option loads, under onnx/ (its DEFAULT_DTYPE_SUFFIX_MAPPING)
GRAPHS = {"fp32": "model.onnx", "int8": "model_int8.onnx"}
# Dynamic int8 quantizes activations at run time with scales from each input's own range, and
# the two sides run different ONNX Runtime builds (transformers.js pins onnxruntime-node 1.30;
# the Python wheel is whatever the venv holds), whose integer kernels may round differently,
# as they do across instruction sets: a sentence whose two logits are within rounding of each
# other may flip. One in 64 is the most that rounding explains; more is a different graph.
# (On the machine this was written on, 1.30 in Node and 1.32 in Python matched bit for bit.)
MIN_INT8_AGREEMENT = 0.98


def _train(model_dir: Path) -> None:
    """Two epochs on 2048 SST-2 training sentences (~3 s): 77 % on the dev sentences, with
    both labels common among them.

    On one torch thread: tiny matrices gain nothing from more, and where other processes hold
    the cores (a benchmark, a CI neighbour) the thread pool's waits made this 20x slower.
    """
    model = BertForSequenceClassification.from_pretrained(model_dir)
    tokenizer = BertTokenizerFast.from_pretrained(model_dir)
    rows = sst2_rows("train", limit=2048)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    try:
        for _epoch in range(2):
            for start in range(0, len(rows), 32):
                batch = rows[start : start + 32]
                enc = tokenizer([t for t, _ in batch], padding=True, truncation=True,
                                max_length=64, return_tensors="pt")  # fmt: skip
                model(**enc, labels=torch.tensor([y for _, y in batch])).loss.backward()
                optimizer.step()
                optimizer.zero_grad()
    finally:
        torch.set_num_threads(threads)
    model.save_pretrained(model_dir)


@pytest.fixture(scope="module")
def package(tiny_teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained 2-layer BERT exported as the pipeline ships it, plus its dynamic int8 file.

    Trained (a few seconds), not random: a random tiny model gives one label to nearly every
    sentence, and then agreeing labels would prove nothing.
    """
    model_dir = save_variant(tiny_teacher_dir, tmp_path_factory.mktemp("trained"), seed=0,
                             num_hidden_layers=2, id2label=ID2LABEL,
                             label2id={v: k for k, v in ID2LABEL.items()})  # fmt: skip
    _train(model_dir)
    fp32 = export_onnx(model_dir, tmp_path_factory.mktemp("shipped") / "package")
    mode = get_mode("dynamic-int8")
    mode.make(fp32, mode.path_for(fp32), QuantizeConfig())
    return fp32.parent.parent


@pytest.fixture(scope="module")
def python_logits(package: Path) -> dict[str, np.ndarray]:
    """dtype -> ONNX Runtime's logits in Python, one sentence per run like the Node side."""
    logits: dict[str, np.ndarray] = {}
    for dtype, name in GRAPHS.items():
        logits[dtype] = predict_logits(graphs_dir(package) / name, DEV, max_length=MAX_LENGTH,
                                       batch_size=1, tokenizer_dir=package)  # fmt: skip
    return logits


def _node_modules() -> Path:
    """tests/js/node_modules, installed from the lockfile on first use; skips (saying the
    command to run) where Node is absent or the install fails, e.g. with no network."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed to run transformers.js (install Node >= 20)")
    modules = JS_DIR / "node_modules"
    lock, installed = JS_DIR / "package-lock.json", modules / ".package-lock.json"
    if installed.is_file() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return modules
    try:
        done = subprocess.run(INSTALL.split(), cwd=JS_DIR, capture_output=True, text=True,
                              timeout=600)  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.skip(f"`{INSTALL}` in {JS_DIR} took over 10 minutes; run it by hand")
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if "complete log" not in line]
        reason = next((line for line in errors if line.startswith("npm error")), "no output")
        pytest.skip(f"`{INSTALL}` in {JS_DIR} failed ({reason}); run it by hand")
    return modules


def run_transformers_js(package: Path, texts: list[str], **request: Any) -> dict[str, Any]:
    """transformers.js's output (`tests/js/classify.mjs`) for both graphs of `package`, from
    one Node process (its start and import cost about a second); skips where Node is not."""
    _node_modules()
    request = {"folder": str(package), "dtypes": list(GRAPHS), "texts": texts,
               "max_length": MAX_LENGTH, **request}  # fmt: skip
    done = subprocess.run(["node", "classify.mjs"], cwd=JS_DIR, input=json.dumps(request),
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def js_run(package: Path) -> dict[str, Any]:
    return run_transformers_js(package, DEV)


def _labels(logits: np.ndarray) -> list[str]:
    return [ID2LABEL[int(i)] for i in logits.argmax(axis=1)]


def test_the_package_has_what_the_tools_look_for(package: Path) -> None:
    """transformers.js reads the fast tokenizer's tokenizer.json (it has no WordPiece vocab
    reader of its own) and the graphs under onnx/ by dtype."""
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        assert (package / name).is_file(), name
    for name in GRAPHS.values():
        assert (graphs_dir(package) / name).is_file(), name
    tokenizer = json.loads((package / "tokenizer.json").read_text("utf-8"))
    assert tokenizer["model"]["type"] == "WordPiece"


def test_the_sentences_get_both_labels(python_logits: dict[str, np.ndarray]) -> None:
    """Otherwise a model that says one label for everything would pass the comparisons."""
    for dtype, logits in python_logits.items():
        counts = {label: _labels(logits).count(label) for label in ID2LABEL.values()}
        assert min(counts.values()) >= 8, (dtype, counts)


def test_transformers_js_fp32_matches_onnx_runtime(
    js_run: dict[str, Any], python_logits: dict[str, np.ndarray]
) -> None:
    """Same graph, same tokens, float kernels: the logits agree to rounding, so tokenization
    (lower-casing, WordPiece, special tokens, truncation) is the same in both libraries."""
    js = js_run["fp32"]
    assert js["labels"] == _labels(python_logits["fp32"])
    np.testing.assert_allclose(np.asarray(js["logits"]), python_logits["fp32"], atol=1e-4)


def test_transformers_js_int8_agrees_with_onnx_runtime(
    js_run: dict[str, Any], python_logits: dict[str, np.ndarray]
) -> None:
    js = js_run["int8"]
    agreement = np.mean(np.asarray(js["labels"]) == np.asarray(_labels(python_logits["int8"])))
    assert agreement >= MIN_INT8_AGREEMENT, f"int8 labels agree on {agreement:.1%}"
    # a different file (fp32 loaded for int8) would also agree on labels: the logits tell
    assert not np.allclose(np.asarray(js["logits"]), python_logits["fp32"], atol=1e-6)


def test_optimum_loads_the_package_as_it_is(
    package: Path, python_logits: dict[str, np.ndarray]
) -> None:
    """optimum's ORTModel reads the config at the root and the graph from onnx/, offline."""
    from optimum.onnxruntime import ORTModelForSequenceClassification

    tokenizer = BertTokenizerFast.from_pretrained(package)
    for dtype, name in GRAPHS.items():
        model = ORTModelForSequenceClassification.from_pretrained(
            package, subfolder="onnx", file_name=name, local_files_only=True
        )
        logits = np.concatenate([
            model(**tokenizer(text, truncation=True, max_length=MAX_LENGTH,
                              return_tensors="np")).logits
            for text in DEV
        ])  # fmt: skip
        assert [model.config.id2label[int(i)] for i in logits.argmax(axis=1)] == _labels(
            python_logits[dtype]
        ), dtype
        np.testing.assert_allclose(logits, python_logits[dtype], atol=1e-5)
