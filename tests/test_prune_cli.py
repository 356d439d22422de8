"""`compressor prune` and `compress` with a prune stage, as a user runs them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForMaskedLM,
)

from compressor import pipeline
from compressor.pipeline.context import RunContext
from compressor.pipeline.vocab import Vocab
from compressor.recipe import load_recipe
from tests.conftest import build_tokenizer, save_variant, sst2_rows, write_sst2_subset
from tests.test_cli import assert_user_error, cli


@pytest.fixture(scope="module")
def spread_teacher(tiny_teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny teacher's shape (hidden 32, 4 heads of 8, FFN 64) with spread weights, so
    that its logits differ from sentence to sentence."""
    folder = tmp_path_factory.mktemp("spread_teacher")
    return save_variant(tiny_teacher_dir, folder, seed=3, initializer_range=0.3)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sst2_subset(tmp_path_factory.mktemp("data"), 128, 48)


def test_prune_cuts_a_plain_smaller_model_that_exports(
    spread_teacher: Path, data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    result = cli("prune", "--teacher", str(spread_teacher), "--out", str(out), "--data", str(data),
                 "--heads", "2", "--ffn", "32", "--hidden", "16", "--steps", "20",
                 "--batch-size", "16", "--skip-benchmark", "--prune-vocab")  # fmt: skip
    assert result.returncode == 0, result.stderr
    stages = json.loads((out / "state.json").read_text())["stages"]
    assert "distill" not in stages  # HomoDistil starts from the teacher itself
    pruned = stages["prune"]
    assert pruned["architecture"] == {
        "hidden_size": 16, "intermediate_size": 32, "heads_per_layer": [2, 2, 2, 2],
    }  # fmt: skip
    assert pruned["shrink_max_abs_diff"] < 1e-4
    trace = pruned["trace"]
    assert [t["step"] for t in trace] == list(range(21))
    assert trace[0]["probe_kl"] == pytest.approx(0.0, abs=1e-6)  # an exact copy: no gap
    probed = [t["step"] for t in trace if "probe_kl" in t]
    # before training, every 10 steps, and at the pruning steps: begin 2 + 10, and end 14
    assert probed == [0, 10, 12, 14, 20]
    assert pruned["trace"][-1]["remaining"] == pytest.approx(
        pruned["student_non_embedding_parameters"] / pruned["non_embedding_parameters_before"],
        abs=1e-5,
    )
    assert pruned["best_step"] >= pruned["schedule"]["end"]
    assert (
        pruned["student_non_embedding_parameters"] < pruned["teacher_non_embedding_parameters"] / 3
    )
    model = AutoModelForSequenceClassification.from_pretrained(out / "model")
    assert model.config.hidden_size == 16 and model.config.num_attention_heads == 2
    vocab = stages["vocab"]  # the tiny tokenizer has 405 tokens; 128 sentences use fewer
    assert vocab["vocab_before"] == 405 and 100 < vocab["vocab_after"] < 405
    assert vocab["max_abs_diff_on_train_text"] < 1e-5
    assert vocab["size_mb_after"] < vocab["size_mb_before"]
    tokenizer = AutoTokenizer.from_pretrained(out / "model")
    assert len(tokenizer) == model.config.vocab_size == vocab["vocab_after"]
    assert stages["export"]["parity"]["passed"]
    assert stages["quantize"]["path"].endswith(".onnx")
    report = (out / "report.md").read_text()
    assert "## Pruning (HomoDistil)" in report and "Result: hidden 16, FFN 32" in report
    assert 'alt="prediction gap while pruning"' in (out / "report.html").read_text()


def test_vocab_pruning_that_changes_the_logits_is_refused(
    spread_teacher: Path, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from compressor.data import load_task_data
    from compressor.errors import UserError
    from compressor.prune import vocab
    from compressor.runfolder import RunFolder

    real_prune = vocab.prune_vocabulary

    def renumbering(model, tokenizer, texts, pairs=None):
        """The real cut, then two kept tokens' rows swapped: as if the rebuilt tokenizer
        gave some words the wrong ids."""
        new_tokenizer, kept = real_prune(model, tokenizer, texts, pairs)
        table = model.get_input_embeddings().weight
        ids = new_tokenizer("a film")["input_ids"][1:3]
        with torch.no_grad():
            table[ids] = table[ids[::-1]].clone()
        return new_tokenizer, kept

    monkeypatch.setattr(vocab, "prune_vocabulary", renumbering)
    recipe = load_recipe(None, {"data.source": str(data), "data.max_length": 32})
    run = RunFolder.create(tmp_path / "run", "compress", recipe, overwrite=False, resume=False)
    shutil.copytree(spread_teacher, run.path / "model")
    before = {f.name: f.read_bytes() for f in (run.path / "model").iterdir()}
    with pytest.raises(UserError, match=r"vocabulary pruning changed the logits of 64 training"):
        Vocab().run(RunContext(recipe, "", run, preloaded=load_task_data(recipe.data)))
    assert not run.done("vocab")
    assert {f.name: f.read_bytes() for f in (run.path / "model").iterdir()} == before


def test_prune_dry_run_and_bad_targets(spread_teacher: Path, data: Path, tmp_path: Path) -> None:
    args = ["prune", "--teacher", str(spread_teacher), "--out", str(tmp_path / "o"),
            "--data", str(data), "--dry-run"]  # fmt: skip
    result = cli(*args, "--budget", "0.5", "--steps", "50")
    assert result.returncode == 0, result.stderr
    assert "skipped: HomoDistil" in result.stdout
    assert "{'heads': 2, 'ffn': 28}" in result.stdout and "cubic from step 5 to 35" in result.stdout
    assert_user_error(cli(*args, "--hidden", "20"), "not a multiple of the head size 8")
    assert_user_error(cli(*args, "--hidden", "16", "--heads", "3"), "does not fit hidden width 16")
    assert_user_error(cli(*args, "--budget", "0.5", "--heads", "2"), "set either budget or heads")
    assert not (tmp_path / "o").exists()


def test_compress_chains_distill_then_prune(
    spread_teacher: Path, data: Path, tmp_path: Path
) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"data: {{source: {data}, max_length: 32}}\nstudent: {{layers: 2}}\n"
        "train: {max_steps: 6, batch_size: 16}\n"
        "prune: {enabled: true, start: distilled, ffn: 16, heads: 3, train: {max_steps: 10}}\n"
    )
    paths = pipeline.compress(str(spread_teacher), load_recipe(recipe), tmp_path / "run",
                              overwrite=False, resume=False, skip_benchmark=True,
                              skip_export=True)  # fmt: skip
    stages = json.loads((tmp_path / "run" / "state.json").read_text())["stages"]
    assert stages["distill"]["steps"] == 6 and stages["prune"]["steps"] == 10
    assert stages["prune"]["source"] == "the distilled student"
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "run" / "model")
    assert model.config.num_hidden_layers == 2 and model.config.intermediate_size == 16
    heads = [layer.attention.self.num_attention_heads for layer in model.bert.encoder.layer]
    assert heads == [3, 3]
    assert json.loads(paths["json"].read_text())["pruning"]["kept"]["ffn"] == [16, 16]
    with torch.no_grad():
        assert model(input_ids=torch.tensor([[2, 10, 11, 3]])).logits.shape == (1, 2)


@pytest.fixture(scope="module")
def mlm_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny pre-trained-style masked LM (random weights with a real MLM head)."""
    folder = tmp_path_factory.mktemp("mlm_teacher")
    tok = build_tokenizer(folder)
    torch.manual_seed(5)
    config = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=64, max_position_embeddings=128,
                        initializer_range=0.1)  # fmt: skip
    BertForMaskedLM(config).save_pretrained(folder)
    return folder


def test_task_agnostic_prune_on_unlabelled_text_gives_a_smaller_masked_lm(
    mlm_teacher: Path, data: Path, tmp_path: Path
) -> None:
    text = tmp_path / "corpus.tsv"  # no label column at all
    text.write_text("sentence\n" + "\n".join(t for t, _ in sst2_rows("dev", 160)) + "\n")
    out = tmp_path / "run"
    result = cli("prune", "--objective", "mlm", "--teacher", str(mlm_teacher), "--out", str(out),
                 "--data", str(text), "--hidden", "16", "--ffn", "32", "--steps", "12",
                 "--batch-size", "16")  # fmt: skip
    assert result.returncode == 0, result.stderr
    stages = json.loads((out / "state.json").read_text())["stages"]
    assert set(stages) == {"prune"}  # nothing to export or score on a task yet
    pruned = stages["prune"]
    assert pruned["objective"] == "mlm" and pruned["shrink_max_abs_diff"] < 1e-4
    assert pruned["architecture"]["hidden_size"] == 16
    assert pruned["trace"][0]["probe_kl"] == pytest.approx(0.0, abs=1e-6)
    assert 0 <= pruned["best_dev_accuracy"] <= 1  # masked-token accuracy
    model = AutoModelForMaskedLM.from_pretrained(out / "model")
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert model.config.intermediate_size == 32 and model.config.num_attention_heads == 2
    assert "masked-token accuracy" in (out / "report.md").read_text()
    tuned = cli("finetune", "--model", str(out / "model"), "--data", str(data), "--out",
                str(tmp_path / "tuned"), "--steps", "3", "--batch-size", "16")  # fmt: skip
    assert tuned.returncode == 0, tuned.stderr
    classifier = AutoModelForSequenceClassification.from_pretrained(tmp_path / "tuned" / "model")
    assert classifier.config.hidden_size == 16


def test_task_agnostic_prune_needs_a_masked_lm_head(
    spread_teacher: Path, data: Path, tmp_path: Path
) -> None:
    result = cli("prune", "--objective", "mlm", "--teacher", str(spread_teacher), "--out",
                 str(tmp_path / "o"), "--data", str(data), "--ffn", "32", "--dry-run")  # fmt: skip
    assert_user_error(result, "has no masked-LM head")
