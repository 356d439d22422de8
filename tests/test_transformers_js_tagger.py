"""A shipped tagger package loads in transformers.js (`AutoModelForTokenClassification`, in
Node) and optimum (`ORTModelForTokenClassification`) as it is, and both give per-piece logits
and tags that ONNX Runtime gives in Python, on real CoNLL-2003 dev sentences, for the fp32
and the dynamic int8 graph. Node's side skips, saying why, where Node is absent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from transformers import BertTokenizerFast

from compressor.inference import predict_piece_logits
from compressor.layout import graphs_dir
from compressor.recipe import QuantizeConfig
from exporters.onnx import export_onnx
from exporters.quant import get_mode
from tests.conftest import CONLL_TAGS, conll_sentences, save_tagger
from tests.test_transformers_js import GRAPHS, MIN_INT8_AGREEMENT, run_transformers_js

TAGS = CONLL_TAGS
TEXTS = [" ".join(line.split()[0] for line in block.splitlines())
         for block in conll_sentences("dev.txt", 40)]  # fmt: skip
MAX_LENGTH = 128


@pytest.fixture(scope="module")
def package(tagger_backbone: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT tagger with spread weights (std 0.3, so pieces get different tags),
    exported as the pipeline ships it, plus its dynamic int8 file."""
    model_dir = save_tagger(tagger_backbone, tmp_path_factory.mktemp("tagger"), seed=5,
                            initializer_range=0.3)  # fmt: skip
    fp32 = export_onnx(model_dir, tmp_path_factory.mktemp("shipped") / "package")
    mode = get_mode("dynamic-int8")
    mode.make(fp32, mode.path_for(fp32), QuantizeConfig())
    return fp32.parent.parent


@pytest.fixture(scope="module")
def python_logits(package: Path) -> dict[str, list[np.ndarray]]:
    """dtype -> ONNX Runtime's per-piece logits in Python, one sentence per run like the Node
    side."""
    return {
        dtype: [p.logits for p in predict_piece_logits(graphs_dir(package) / name, TEXTS,
                                                       max_length=MAX_LENGTH, batch_size=1)]
        for dtype, name in GRAPHS.items()
    }  # fmt: skip


def _tags(rows: list[np.ndarray]) -> list[list[str]]:
    return [[TAGS[int(i)] for i in row.argmax(axis=1)] for row in rows]


@pytest.fixture(scope="module")
def js_run(package: Path) -> dict[str, Any]:
    return run_transformers_js(package, TEXTS, task="token-classification")


def test_the_pieces_get_several_tags(python_logits: dict[str, list[np.ndarray]]) -> None:
    """Otherwise one tag for everything would pass the comparisons."""
    for dtype, rows in python_logits.items():
        seen = {tag for tags in _tags(rows) for tag in tags}
        assert len(seen) >= 4, (dtype, seen)


def test_transformers_js_tags_as_onnx_runtime_does(
    js_run: dict[str, Any], python_logits: dict[str, list[np.ndarray]]
) -> None:
    fp32 = js_run["fp32"]
    assert fp32["labels"] == _tags(python_logits["fp32"])
    for js, py in zip(fp32["logits"], python_logits["fp32"], strict=True):
        np.testing.assert_allclose(np.asarray(js), py, atol=1e-4)
    int8 = js_run["int8"]
    pairs = [(a, b) for js, py in zip(int8["labels"], _tags(python_logits["int8"]), strict=True)
             for a, b in zip(js, py, strict=True)]  # fmt: skip
    agreement = np.mean([a == b for a, b in pairs])
    assert agreement >= MIN_INT8_AGREEMENT, f"int8 tags agree on {agreement:.1%} of pieces"
    first = np.asarray(int8["logits"][0])
    assert not np.allclose(first, python_logits["fp32"][0], atol=1e-6)  # the int8 file ran


def test_optimum_loads_the_tagger_package_as_it_is(
    package: Path, python_logits: dict[str, list[np.ndarray]]
) -> None:
    from optimum.onnxruntime import ORTModelForTokenClassification

    tokenizer = BertTokenizerFast.from_pretrained(package)
    for dtype, name in GRAPHS.items():
        model = ORTModelForTokenClassification.from_pretrained(
            package, subfolder="onnx", file_name=name, local_files_only=True
        )
        for text, expected in zip(TEXTS, python_logits[dtype], strict=True):
            enc = tokenizer(text, truncation=True, max_length=MAX_LENGTH, return_tensors="np")
            np.testing.assert_allclose(model(**enc).logits[0], expected, atol=1e-5)
