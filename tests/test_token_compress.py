"""Token classification through the whole chain on real CoNLL-2003 sentences and a tiny
tagger: `finetune` makes a tagger with the data's tags, `compress` distils, prunes the
vocabulary, exports (parity word by word), quantizes, scores every file by entity F1 and
times it,
`predict` returns entity spans, and a setting the task cannot run yet is refused before any
training."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from compressor.predict import Predictor
from compressor.recipe import load_recipe
from compressor.search import SearchTarget, plan, search
from exporters.quant.fallback import candidates
from tests.conftest import CONLL_TAGS, conll_sentences
from tests.test_cli import cli

TYPES = {"PER", "LOC", "ORG", "MISC"}


@pytest.fixture(scope="module")
def tagger(
    tmp_path_factory: pytest.TempPathFactory, conll_subset: Path, tagger_backbone: Path
) -> Path:
    out = tmp_path_factory.mktemp("ft") / "teacher"
    done = cli("finetune", "--model", str(tagger_backbone), "--data", str(conll_subset),
               "--out", str(out), "--steps", "150", "--lr", "3e-3")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_finetune_makes_a_tagger_with_the_datas_tags(tagger: Path) -> None:
    config = json.loads((tagger / "model" / "config.json").read_text())
    assert config["architectures"] == ["BertForTokenClassification"]
    assert list(config["id2label"].values()) == CONLL_TAGS
    train = json.loads((tagger / "state.json").read_text())["stages"]["train"]
    assert train["dev_metric"] == "entity F1"
    assert train["dev_accuracy"] > 0.0  # 150 steps at a high rate find some entities


def test_compress_ships_tagger_files_scored_by_entity_f1(
    tagger: Path, conll_subset: Path, tmp_path: Path
) -> None:
    out, recipe = tmp_path / "run", tmp_path / "vocab.yaml"
    recipe.write_text(
        "vocab:\n  prune: true\nbenchmark:\n  batches: [1]\n  seq_lens: [dev]\n"
        "  threads: [1]\n  warmup: 1\n  iters: 2\n  rounds: 1\n"
    )
    done = cli("compress", "--teacher", str(tagger), "--data", str(conll_subset), "--out",
               str(out), "--steps", "6", "--recipe", str(recipe))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    stages = json.loads((out / "state.json").read_text())["stages"]
    assert stages["distill"]["stages"][0]["teacher_pass"].startswith("stored hidden states")
    assert stages["vocab"]["vocab_after"] < stages["vocab"]["vocab_before"]
    assert stages["vocab"]["max_abs_diff_on_train_text"] < 1e-4
    assert stages["export"]["parity"]["passed"]
    assert stages["export"]["parity"]["max_abs_diff"] < 1e-3
    assert stages["quantize"]["path"] and Path(stages["quantize"]["path"]).is_file()
    assert "e2e" not in stages  # raw-sentence files answer one label per sentence
    evaluate = stages["evaluate"]
    assert evaluate["dev_metric"] == "entity F1"
    scores = evaluate["dev_accuracy"]
    assert scores["student_onnx"] == pytest.approx(scores["student"], abs=1e-9)
    for key in ("teacher", "student", "student_onnx", "student_int8", "teacher_int8"):
        assert 0.0 <= scores[key] <= 1.0
        figures = evaluate["dev_figures"][key]
        p, r = figures["precision"], figures["recall"]
        assert figures["entity_f1"] == pytest.approx(2 * p * r / (p + r) if p + r else 0.0)
    assert scores["teacher"] > 0.0
    manifest = json.loads((out / "onnx" / "manifest.json").read_text())
    assert manifest["onnx/model_int8.onnx"]["dev_metric"] == "entity F1"
    timed = {(r["baseline"], r["candidate"]) for r in stages["benchmark"]["speedups"]}
    assert ("teacher ONNX int8", "student ONNX int8") in timed  # at the dev sentences' lengths
    assert {r["seq_len"] for r in stages["benchmark"]["results"]} == {"dev"}
    report = (out / "report.md").read_text()
    assert "| Dev entity F1 |" in report and "## Dev figures" in report
    card = (out / "onnx" / "README.md").read_text()
    assert "pipeline_tag: token-classification" in card and "ORTModelForTokenClassification" in card

    for mode in ("static-int8", "int4"):
        made = cli("quantize", str(out / "onnx"), "--mode", mode, "--data", str(conll_subset))
        assert made.returncode == 0, made.stdout + made.stderr
    manifest = json.loads((out / "onnx" / "manifest.json").read_text())
    for name in ("onnx/model_static_int8.onnx", "onnx/model_q4.onnx"):
        assert manifest[name]["dev_metric"] == "entity F1"
        assert 0.0 <= manifest[name]["dev_accuracy"] <= 1.0
    # at no disagreement allowed, nodes go back to fp32 until the file agrees with fp32 fully
    kept = cli("quantize", str(out / "onnx"), "--mode", "static-int8", "--max-drop", "0",
               "--data", str(conll_subset))  # fmt: skip
    assert kept.returncode == 0, kept.stdout + kept.stderr
    record = json.loads((out / "onnx" / "manifest.json").read_text())[
        "onnx/model_static_int8.onnx"]["quantization"]["max_drop"]  # fmt: skip
    assert record["metric"] == "entity F1" and record["examples"] == 160
    assert record["changed_points_before"] > 0 == record["changed_points_after"]
    assert record["within_limit"] and record["kept_fp32"]
    assert set(record["kept_fp32"]) <= set(candidates(out / "onnx" / "onnx" / "model.onnx"))

    predictor = Predictor(out)
    texts = [" ".join(line.split()[0] for line in block.splitlines())
             for block in conll_sentences("dev.txt", 40)]  # fmt: skip
    found = predictor.entities(texts)
    assert len(found) == len(texts)
    spans = [(text, e) for text, row in zip(texts, found, strict=True) for e in row]
    assert all(text[e.start : e.end] == e.word and e.type in TYPES for text, e in spans)
    listed = cli("predict", str(out), "--text", texts[0], "--out", str(tmp_path / "p.jsonl"))
    assert listed.returncode == 0, listed.stderr
    (row,) = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert row == {"text": texts[0], "entities": [asdict(e) for e in found[0]]}


def test_settings_the_task_cannot_run_are_refused(
    tagger: Path, conll_subset: Path, tmp_path: Path
) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("augment:\n  enabled: true\nstudent:\n  kind: cnn\n")
    done = cli("compress", "--teacher", str(tagger), "--data", str(conll_subset), "--out",
               str(tmp_path / "run"), "--recipe", str(recipe), "--dry-run")  # fmt: skip
    assert done.returncode != 0
    assert (
        "token-classification data, which augment.methods replace (this data takes token, "
        "mention, shuffle), student.kind cnn cannot"
    ) in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr
    space = tmp_path / "space.yaml"
    space.write_text("search:\n  kinds:\n    cnn: {}\n")
    searched = cli("search", "--teacher", str(tagger), "--data", str(conll_subset), "--out",
                   str(tmp_path / "search"), "--max-drop", "1", "--budget", "1m", "--recipe",
                   str(space), "--dry-run")  # fmt: skip
    assert searched.returncode != 0 and not (tmp_path / "search").exists()
    assert (
        "search.kinds.cnn.fixed: token-classification data cannot run student.kind cnn yet"
        in " ".join(searched.stderr.split())
    )


def test_sequence_data_for_a_tagger_is_refused(tagger: Path, tmp_path: Path) -> None:
    folder = tmp_path / "sst"
    folder.mkdir()
    rows = "".join(f"{'good' if k % 2 else 'bad'} film {k}\t{k % 2}\n" for k in range(20))
    (folder / "train.tsv").write_text("sentence\tlabel\n" + rows)
    done = cli("compress", "--teacher", str(tagger), "--data", str(folder), "--out",
               str(tmp_path / "run"), "--dry-run")  # fmt: skip
    assert done.returncode != 0
    assert "teacher is a token-classification model but" in done.stderr.replace("\n", " ")


def test_homodistil_prunes_a_tagger(tagger: Path, conll_subset: Path, tmp_path: Path) -> None:
    """HomoDistil from the tagger itself: the cut model is a plain smaller tagger whose ONNX
    file passes parity word by word."""
    recipe = tmp_path / "prune.yaml"
    recipe.write_text(
        "prune:\n  enabled: true\n  start: teacher\n  heads: 2\n  ffn: 32\n  hidden: 16\n"
        "  every: 2\n  train:\n    max_steps: 12\nexport:\n  e2e: false\n"
    )
    out = tmp_path / "pruned"
    done = cli("compress", "--teacher", str(tagger), "--data", str(conll_subset), "--out",
               str(out), "--recipe", str(recipe), "--skip-benchmark")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["architectures"] == ["BertForTokenClassification"]
    assert (config["hidden_size"], config["intermediate_size"]) == (16, 32)
    stages = json.loads((out / "state.json").read_text())["stages"]
    assert stages["prune"]["shrink_max_abs_diff"] < 1e-4
    assert stages["export"]["parity"]["passed"]
    assert stages["evaluate"]["dev_metric"] == "entity F1"


def test_a_bilstm_tagger_runs_the_chain(tagger: Path, conll_subset: Path, tmp_path: Path) -> None:
    """Tang's BiLSTM as a tagger, on a transfer set grown by tag-preserving augmentation:
    distilled on the cached first-piece logits, exported with a sequence axis on its logits
    (parity word by word), quantized, scored by entity F1, and run by `predict`."""
    recipe = tmp_path / "bilstm.yaml"
    recipe.write_text(
        "student:\n  kind: bilstm\n  hidden: 16\n  mlp: 16\ndistill:\n  prediction_weight: 0\n"
        "  intermediate:\n    - name: logits_mse\ntrain:\n  lr: 1.0e-2\n  weight_decay: 0\n"
        "  eval_every: 10\naugment:\n  enabled: true\n  methods: [token, mention, shuffle]\n"
        "  per_example: 2\n"
    )
    out = tmp_path / "run"
    done = cli("compress", "--teacher", str(tagger), "--data", str(conll_subset), "--out",
               str(out), "--steps", "20", "--recipe", str(recipe), "--skip-benchmark")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["architectures"] == ["BiLSTMForTokenClassification"]
    stages = json.loads((out / "state.json").read_text())["stages"]
    augmented = stages["distill"]["augmentation"]
    assert augmented["methods"] == ["token", "mention", "shuffle"]
    assert 160 < augmented["augmented"] <= 320 and augmented["original"] == 160
    assert stages["distill"]["train_examples"] == 160 + augmented["augmented"]
    trained = stages["distill"]["stages"][0]
    assert trained["teacher_pass"] == "cached logits" and trained["losses"] == ["logits_mse"]
    assert trained["history"][-1]["loss"] < trained["history"][0]["loss"]
    assert stages["distill"]["student_source"].startswith("BiLSTM tagger, 16 units")
    parity = stages["export"]["parity"]
    assert parity["passed"] and parity["max_abs_diff"] < 1e-3
    evaluate = stages["evaluate"]
    assert evaluate["dev_metric"] == "entity F1"
    scores = evaluate["dev_accuracy"]
    assert scores["student_onnx"] == pytest.approx(scores["student"], abs=1e-9)
    assert abs(scores["student_int8"] - scores["student"]) <= 0.2
    texts = [" ".join(line.split()[0] for line in block.splitlines())
             for block in conll_sentences("dev.txt", 10)]  # fmt: skip
    found = Predictor(out).entities(texts)
    assert len(found) == 10
    assert all(text[e.start : e.end] == e.word for text, row in zip(texts, found, strict=True)
               for e in row)  # fmt: skip


def test_a_search_over_taggers(tagger: Path, conll_subset: Path, tmp_path: Path) -> None:
    """The search's tagger defaults (the transformer, the BiLSTM tagger on gold tags and the
    teacher's logits; no CNN) judged by entity F1 against the teacher's."""
    overrides = {
        "data.source": str(conll_subset), "train.max_steps": 8, "train.batch_size": 16,
        "search.trial_steps": 6, "search.rungs": 2, "search.reduction_factor": 2,
        "search.startup_trials": 2, "search.space": {"quantize.mode": ["dynamic-int8"]},
    }  # fmt: skip
    recipe = load_recipe(None, overrides)
    fast = SearchTarget("cpu", None, threads=1, batch=1, seq_len=16, iters=3, rounds=1)
    lines = plan(recipe, fast, 600, None, tmp_path / "s")
    assert set(lines) >= {"kind transformer", "kind bilstm"} and "kind cnn" not in lines
    assert "judged on dev entity F1" in lines["trial"]
    paths = search(str(tagger), recipe, tmp_path / "s", fast, max_drop=50.0, budget_s=600,
                   max_trials=2, ship=False)  # fmt: skip
    summary = json.loads(paths["json"].read_text())
    assert summary["metric"] == "entity F1"
    teacher = json.loads((tagger / "state.json").read_text())["stages"]["train"]
    assert summary["teacher_accuracy"] == pytest.approx(teacher["dev_accuracy"], abs=1e-9)
    assert {r["kind"] for r in summary["rows"]} <= {"transformer", "bilstm"}
    for row in summary["rows"]:
        if row["outcome"]:
            dev = row["outcome"]["dev_accuracy"]
            assert row["outcome"]["drop"] == pytest.approx(
                100 * (summary["teacher_accuracy"] - dev), abs=1e-3
            )
    assert "| Dev entity F1 % |" in paths["md"].read_text()
