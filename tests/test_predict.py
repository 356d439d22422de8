"""`compressor predict` and `Predictor`: labels by name from the shipped file, in the batches
evaluation scores it in, and one line for every bad input."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from compressor import Predictor
from compressor.atomic import read_json, write_json
from compressor.data import Split
from compressor.errors import UserError
from compressor.inference import DEFAULT_BATCH, predict_logits
from compressor.layout import graphs_dir
from compressor.predict import choose_file
from compressor.recipe import QuantizeConfig, load_recipe
from compressor.runfolder import RunFolder
from exporters.artifacts import quantize_checked
from exporters.onnx import export_onnx
from tests.conftest import SST2, save_variant, sst2_rows
from tests.test_cli import cli

ROWS = sst2_rows("dev", limit=200)
TEXTS = [text for text, _ in ROWS]
NAMES = ["negative", "positive"]


@pytest.fixture(scope="module")
def run_dir(tiny_teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A compress run folder as the export and quantize stages leave it (max length 64),
    with a wide-init student: default-init logits hardly differ between sentences."""
    tmp = tmp_path_factory.mktemp("predict")
    model = save_variant(tiny_teacher_dir, tmp / "model", seed=1, initializer_range=0.3,
                         id2label=dict(enumerate(NAMES)),
                         label2id={n: i for i, n in enumerate(NAMES)})  # fmt: skip
    recipe = load_recipe(None, {"data.max_length": 64})
    run = RunFolder.create(tmp / "run", "compress", recipe, overwrite=False, resume=False)
    fp32 = export_onnx(model, run.path / "onnx")
    probe = sst2_rows("dev", limit=32)
    int8 = quantize_checked(fp32, model, Split([t for t, _ in probe], [y for _, y in probe]),
                            cfg=QuantizeConfig(), calibration=None, max_length=64,
                            recipe_hash=recipe.hash())  # fmt: skip
    assert int8["path"], int8
    run.complete("export", path=str(fp32))
    run.complete("quantize", path=int8["path"])
    return run.path


def files(run_dir: Path) -> tuple[Path, Path]:
    """The run's fp32 and int8 files."""
    graphs = graphs_dir(run_dir / "onnx")
    return graphs / "model.onnx", graphs / "model_int8.onnx"


def test_labels_are_the_argmax_of_the_int8_files_logits_at_evaluations_batch(
    run_dir: Path,
) -> None:
    _, int8 = files(run_dir)
    predictor = Predictor(run_dir)
    assert (predictor.path, predictor.choice.artifact) == (int8, "int8")
    assert (predictor.batch_size, predictor.choice.max_length) == (DEFAULT_BATCH, 64)
    assert predictor.labels == NAMES
    predictions = predictor.predict(TEXTS)
    logits = predict_logits(int8, TEXTS, max_length=64)
    assert [p.label for p in predictions] == [NAMES[k] for k in logits.argmax(1)]
    assert {p.label for p in predictions} == set(NAMES), "a constant model proves nothing"
    expected = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    for prediction, row in zip(predictions, expected, strict=True):
        assert list(prediction.probabilities) == NAMES
        assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-9)
        assert list(prediction.probabilities.values()) == pytest.approx(row.tolist(), abs=1e-6)
        assert prediction.score == max(prediction.probabilities.values())


def test_input_order_is_kept(run_dir: Path) -> None:
    predictor = Predictor(run_dir, "fp32")
    forward = predictor.predict(TEXTS[:60])
    backward = predictor.predict(TEXTS[:60][::-1])[::-1]
    assert [p.label for p in forward] == [p.label for p in backward]
    for a, b in zip(forward, backward, strict=True):
        assert a.score == pytest.approx(b.score, abs=1e-5)


def test_progress_follows_the_batches_of_one_evaluation_call(run_dir: Path) -> None:
    """A dynamic-int8 file's outputs depend on its batch: following progress must not change
    the batches, or file labels would drift from evaluation's."""
    _, int8 = files(run_dir)
    seen: list[int] = []
    predictor = Predictor(run_dir, "int8", batch_size=8)
    chunked = predictor.logits(TEXTS, None, seen.append)
    assert len(seen) > 1 and sum(seen) == len(TEXTS)
    whole = predict_logits(int8, TEXTS, max_length=64, batch_size=8)
    assert np.array_equal(chunked, whole)
    one_by_one = predict_logits(int8, TEXTS, max_length=64, batch_size=1)
    assert not np.array_equal(whole, one_by_one), "then batching would not need this care"


def test_run_package_and_file_resolve_to_the_same_files(run_dir: Path, tmp_path: Path) -> None:
    fp32, int8 = files(run_dir)
    package = run_dir / "onnx"
    assert choose_file(package).path == int8 and choose_file(package).max_length == 64
    assert choose_file(package, "fp32").path == fp32
    assert choose_file(fp32).path == fp32 and choose_file(fp32).max_length == 64
    alone = shutil.copytree(package, tmp_path / "package")
    assert choose_file(alone).max_length == 128
    # a moved run: state.json's paths point elsewhere, the files are found by name
    moved = shutil.copytree(run_dir, tmp_path / "moved")
    state = read_json(moved / "state.json")
    state["stages"]["export"]["path"] = "elsewhere/onnx/onnx/model.onnx"
    write_json(moved / "state.json", state)
    assert choose_file(moved, "fp32").path == graphs_dir(moved / "onnx") / "model.onnx"
    # a flat export from before the hub layout: graphs beside config and tokenizer
    flat = shutil.copytree(package, tmp_path / "flat")
    for graph in graphs_dir(flat).iterdir():
        graph.rename(flat / graph.name)
    predictor = Predictor(flat, "fp32")
    assert predictor.path == flat / "model.onnx" and predictor.labels == NAMES
    assert predictor.predict(TEXTS[:3])[0].label in NAMES


def test_end_to_end_file_is_found_and_agrees_with_its_source(run_dir: Path) -> None:
    from compressor.models import load_tokenizer
    from exporters.e2e import build_e2e

    with pytest.raises(UserError, match="has no end-to-end file"):
        Predictor(run_dir, "e2e")
    fp32, _ = files(run_dir)
    e2e = build_e2e(fp32, load_tokenizer(run_dir / "onnx"), 64)
    try:
        predictor = Predictor(run_dir, "e2e", batch_size=4)
        assert predictor.path == e2e
        # words of the vocabulary: the graph's tokenizer and Python's then agree exactly
        vocab = (run_dir / "onnx" / "vocab.txt").read_text(encoding="utf-8").split()[5:]
        texts = [" ".join(vocab[k : k + 3 + k % 7]) for k in range(0, 200, 10)]
        reference = Predictor(run_dir, "fp32", batch_size=4).predict(texts)
        for got, want in zip(predictor.predict(texts), reference, strict=True):
            assert got.label == want.label
            assert got.score == pytest.approx(want.score, abs=1e-5)
        with pytest.raises(UserError, match="not sentence pairs"):
            predictor.predict(texts[:2], texts[:2])
    finally:
        e2e.unlink()


def test_cli_file_writes_one_line_a_row_of_the_real_dev_set(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "preds.jsonl"
    result = cli("predict", str(run_dir), "--file", str(SST2 / "dev.tsv"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "int8, the default" in result.stderr and "batch size 64" in result.stderr
    assert "predicting: 872/872" in result.stderr  # the progress line without a terminal
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    dev = [text for text, _ in sst2_rows("dev")]
    assert len(lines) == len(dev) == 872
    assert [line["text"] for line in lines] == dev
    labels = [line["label"] for line in lines]
    assert labels == [p.label for p in Predictor(run_dir).predict(dev)]
    assert all(set(line["probabilities"]) == set(NAMES) for line in lines)
    meta = read_json(tmp_path / "preds.meta.json")
    assert meta["batch_size"] == 64 and meta["artifact"] == "int8" and meta["max_length"] == 64


def test_cli_text_prints_a_table_and_stdout_gets_json_lines_for_a_file(
    run_dir: Path, tmp_path: Path
) -> None:
    done = cli("predict", str(run_dir), "--text", "a gorgeous film", "--text", "dull")
    code, out = done.returncode, done.stdout
    assert code == 0 and "gorgeous" in out and "positive" in out and "negative" in out
    assert "int8, the default" in " ".join(out.split())
    small = tmp_path / "small.tsv"
    small.write_text("id\tsentence\n1\tit is good\n2\tit is bad\n", encoding="utf-8")
    done = cli("predict", str(run_dir), "--file", str(small), "--artifact", "fp32")
    code, out = done.returncode, done.stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [row["text"] for row in rows] == ["it is good", "it is bad"]


def test_bad_input_is_one_line_and_exit_2(run_dir: Path, tmp_path: Path) -> None:
    no_column = tmp_path / "no_column.tsv"
    no_column.write_text("review\tstars\nfine\t5\n", encoding="utf-8")
    unexported = tmp_path / "unexported"
    RunFolder.create(unexported, "compress", load_recipe(None), overwrite=False, resume=False)
    run = str(run_dir)
    cases = {
        "does not exist": ["predict", str(tmp_path / "nowhere"), "--text", "x"],
        "no column 'sentence' (its columns: review, stars)": [
            "predict", run, "--file", str(no_column)],
        "--text (repeatable) or --file, one of the two": ["predict", run],
        "one of the two": ["predict", run, "--text", "x", "--file", str(no_column)],
        "unknown artifact 'int4'": ["predict", run, "--text", "x", "--artifact", "int4"],
        "its export stage has not run": ["predict", str(unexported), "--text", "x"],
        "has no end-to-end file": ["predict", run, "--text", "x", "--artifact", "e2e"],
        "no file": ["predict", run, "--file", str(tmp_path / "missing.tsv")],
    }  # fmt: skip
    for message, argv in cases.items():
        done = cli(*argv)
        code, err = done.returncode, done.stderr
        assert code == 2, (message, err)
        assert err.count("\n") == 1 and message in err and "Traceback" not in err, err


def test_help_states_evaluations_batch_size() -> None:
    from typer.testing import CliRunner

    from compressor.cli import app

    result = CliRunner().invoke(app, ["predict", "--help"], env={"COLUMNS": "200"})
    assert f"[default: {DEFAULT_BATCH}]" in " ".join(result.output.split())
