"""The `bilstm` student kind (Tang et al. 2019) through the whole chain: built from a tiny
BERT teacher, trained on its logits, saved and loaded by code that ships with the weights,
exported, quantized, vocabulary-pruned and run by `compress`."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from compressor.distill.objective import DistillObjective
from compressor.errors import UserError
from compressor.models import count_parameters, load_tokenizer
from compressor.pipeline import compress
from compressor.prune.vocab import prune_vocabulary
from compressor.recipe import (
    DistillConfig,
    IntermediateLoss,
    StudentConfig,
    load_recipe,
)
from compressor.students import kind_of, load_trained, make_student
from compressor.students.bilstm import BILSTM
from exporters.onnx import export_onnx
from exporters.parity import check_parity
from tests.conftest import write_sst2_subset
from tests.custom_students import (
    LABELS,
    RECIPES,
    TEXTS,
    Teacher,
    dynamic_int8,
    load_in_clean_process,
    logits_mse_training,
    logits_of,
    spread_teacher,
)

SMALL = StudentConfig(kind="bilstm", hidden=12, mlp=16)


@pytest.fixture(scope="module")
def teacher(tiny_teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Teacher:
    return spread_teacher(tiny_teacher_dir, tmp_path_factory.mktemp("spread"))


@pytest.fixture(scope="module")
def student_dir(teacher: Teacher, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    student, tokenizer = make_student(*teacher, SMALL, TEXTS)
    folder = tmp_path_factory.mktemp("bilstm") / "student"
    BILSTM.save(student, tokenizer, folder)
    return folder


@pytest.fixture(scope="module")
def onnx_path(student_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(student_dir, tmp_path_factory.mktemp("export") / "onnx", opset=18)


def test_build_keeps_the_teachers_tokenizer_and_embeddings(teacher: Teacher) -> None:
    model, tokenizer = teacher
    student, student_tok = make_student(model, tokenizer, SMALL, TEXTS)
    assert student_tok is tokenizer and kind_of(student) is BILSTM
    assert torch.equal(student.embeddings.weight, model.get_input_embeddings().weight)
    config = student.config
    assert (config.vocab_size, config.embedding_dim) == (len(tokenizer), 32)
    assert config.id2label == model.config.id2label and config.embedding_variance_kept == 1.0
    # the embedding table is left out of the non-embedding count, the BiLSTM is not
    lstm = 2 * 4 * 12 * (32 + 12 + 2)  # two directions, 4 gates, input + recurrent + 2 biases
    head = (24 * 16 + 16) + (16 * 2 + 2)
    assert count_parameters(student, embeddings=False) == lstm + head
    assert count_parameters(student) == lstm + head + len(tokenizer) * 32
    with pytest.raises(UserError, match=r"embedding_dim 64 is wider than the teacher's word "):
        make_student(model, tokenizer, SMALL.model_copy(update={"embedding_dim": 64}), TEXTS)


def test_narrower_embeddings_are_the_teachers_principal_components(teacher: Teacher) -> None:
    model, tokenizer = teacher
    low_rank = copy.deepcopy(model)
    torch.manual_seed(1)
    rows = len(tokenizer)
    table = torch.randn(rows, 6) @ torch.randn(6, 32) + 0.05 * torch.randn(rows, 32)
    low_rank.get_input_embeddings().weight.data.copy_(table)
    student, _ = make_student(low_rank, tokenizer, SMALL.model_copy(update={"embedding_dim": 6}),
                              TEXTS)  # fmt: skip
    reduced, kept = student.embeddings.weight.detach(), student.config.embedding_variance_kept
    assert reduced.shape == (rows, 6) and kept > 0.99
    # mapped back by least squares, the 6 columns rebuild the centred table but the lost share
    centred = table - table.mean(0)
    back = reduced @ torch.linalg.lstsq(reduced, centred).solution
    assert float((back - centred).pow(2).sum() / centred.pow(2).sum()) == pytest.approx(
        1 - kept, abs=2e-4
    )
    # on the random (full-rank) table, half the components keep more than any half of the axes
    half, _ = make_student(model, tokenizer, SMALL.model_copy(update={"embedding_dim": 16}), TEXTS)
    raw = model.get_input_embeddings().weight.detach()
    axes = (raw - raw.mean(0)).pow(2).sum(0).sort(descending=True).values
    assert half.config.embedding_variance_kept > float(axes[:16].sum() / axes.sum()) > 0.5


def test_single_and_pair_forward_shapes(teacher: Teacher) -> None:
    model, tokenizer = teacher
    single, _ = make_student(model, tokenizer, SMALL, TEXTS)
    siamese, _ = make_student(model, tokenizer, SMALL.model_copy(update={"siamese": True}), TEXTS)
    assert single.mlp.in_features == 24 and siamese.mlp.in_features == 4 * 24
    pairs = tokenizer(TEXTS[:5], TEXTS[5:10], padding=True, return_tensors="pt")
    assert logits_of(single, pairs).shape == logits_of(siamese, pairs).shape == (5, 2)
    out = siamese(**pairs, labels=torch.tensor(LABELS[:5]))
    assert out.loss.item() == pytest.approx(
        torch.nn.functional.cross_entropy(out.logits, torch.tensor(LABELS[:5])).item()
    )
    with pytest.raises(ValueError, match="siamese BiLSTM reads sentence pairs"):
        siamese(pairs["input_ids"], pairs["attention_mask"])


@pytest.mark.parametrize("siamese", [False, True])
def test_pads_change_nothing(teacher: Teacher, siamese: bool) -> None:
    """Neither the pad's embedding nor the length of the batch's longest sentence reaches a
    sentence's logits (a plain bidirectional LSTM's backward pass would start on the pads)."""
    model, tokenizer = teacher
    torch.manual_seed(0)
    student, _ = make_student(
        model, tokenizer, SMALL.model_copy(update={"siamese": siamese}), TEXTS
    )
    with torch.no_grad():  # a random BiLSTM's logits differ little between sentences
        student.classifier.weight *= 50
    firsts, seconds = TEXTS[:6], (TEXTS[6:12] if siamese else None)
    batch = tokenizer(firsts, seconds, padding=True, return_tensors="pt")
    assert (batch["attention_mask"] == 0).sum() > 20
    padded = logits_of(student, batch)
    assert padded[:, 0].std() > 0.1  # spread across sentences, so equality means something
    alone = torch.cat([
        logits_of(student, tokenizer([a], [b] if b else None, return_tensors="pt"))
        for a, b in zip(firsts, seconds or [None] * 6, strict=True)
    ])  # fmt: skip
    assert (padded - alone).abs().max() < 1e-4
    with torch.no_grad():
        student.embeddings.weight[tokenizer.pad_token_id] = 7.0
    assert (logits_of(student, batch) - padded).abs().max() < 1e-5


def test_logits_mse_training_lowers_the_loss(teacher: Teacher) -> None:
    losses, parts = logits_mse_training(teacher, SMALL)
    assert parts == {"logits_mse", "prediction_kl"}
    assert losses[0] > 1.0 and losses[-1] < 0.4 * losses[0]


@pytest.mark.parametrize(
    ("loss", "what"),
    [
        ("attention_kl", "attentions"),
        ("hidden_mse", "hidden states"),
        ("value_relation_kl", "Q/K/V"),
    ],
)
def test_losses_reading_what_a_bilstm_lacks_are_refused(
    teacher: Teacher, loss: str, what: str
) -> None:
    student, _ = make_student(*teacher, SMALL, TEXTS)
    cfg = DistillConfig(intermediate=[IntermediateLoss(name=loss)])
    message = rf"^loss {loss} reads {what}, which a bilstm student does not have — drop it"
    with pytest.raises(UserError, match=message):
        DistillObjective(teacher[0], student, cfg)


def test_a_refused_loss_stops_compress_before_any_training(
    tiny_teacher_dir: Path, tmp_path: Path
) -> None:
    data = write_sst2_subset(tmp_path, 32, 16)
    recipe = load_recipe(RECIPES / "bilstm.yaml", {
        "data.source": str(data), "distill.intermediate": [{"name": "attention_kl"}],
    })  # fmt: skip
    with pytest.raises(UserError, match="loss attention_kl reads attentions"):
        compress(str(tiny_teacher_dir), recipe, tmp_path / "run", overwrite=False, resume=False)
    assert not (tmp_path / "run" / "training").exists()


def test_a_saved_student_loads_without_this_project(student_dir: Path, tmp_path: Path) -> None:
    config = json.loads((student_dir / "config.json").read_text())
    assert config["auto_map"]["AutoModelForSequenceClassification"] == (
        "modeling_bilstm.BiLSTMForSequenceClassification"
    )
    assert (student_dir / "modeling_bilstm.py").is_file() and kind_of(student_dir) is BILSTM
    out, here = load_in_clean_process(student_dir, tmp_path)
    assert out["module"].startswith("transformers_modules.")
    # another process may sum in another order (its thread count): equal up to rounding
    assert torch.allclose(torch.tensor(out["logits"]), here, rtol=0, atol=1e-5)
    assert here.std() > 0.05


def test_onnx_export_passes_parity_on_real_sentences(student_dir: Path, onnx_path: Path) -> None:
    names = {p.name for p in onnx_path.parents[1].iterdir()} | {onnx_path.name}
    assert {"model.onnx", "config.json", "tokenizer.json", "vocab.txt"} <= names
    config = json.loads((onnx_path.parents[1] / "config.json").read_text())
    assert config["model_type"] == "compressor-bilstm" and "auto_map" not in config
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask"]
    assert [i.shape for i in session.get_inputs()] == [["batch", "sequence"]] * 2
    parity = check_parity(student_dir, onnx_path, TEXTS, tolerance=1e-5, max_length=64)
    assert parity.passed and parity.n == 48 and parity.argmax_agreement == 1.0


def test_siamese_export_passes_parity_on_pairs(teacher: Teacher, tmp_path: Path) -> None:
    torch.manual_seed(0)
    student, tokenizer = make_student(*teacher, SMALL.model_copy(update={"siamese": True}), TEXTS)
    BILSTM.save(student, tokenizer, tmp_path / "student")
    path = export_onnx(tmp_path / "student", tmp_path / "onnx", opset=18)
    inputs = [i.name for i in onnx.load(str(path)).graph.input]
    assert inputs == ["input_ids", "attention_mask", "token_type_ids"]
    parity = check_parity(tmp_path / "student", path, TEXTS[:24], TEXTS[24:], tolerance=1e-5,
                          max_length=64)  # fmt: skip
    assert parity.passed and parity.n == 24


def test_dynamic_int8_file_passes_its_agreement_gate(student_dir: Path, onnx_path: Path) -> None:
    result = dynamic_int8(student_dir, onnx_path)
    assert result["path"] and result["parity"]["passed"]
    assert result["parity"]["argmax_agreement"] >= 0.9 and result["parity"]["n"] == 48
    ops = {node.op_type for node in onnx.load(result["path"]).graph.node}
    assert {"DynamicQuantizeLSTM", "MatMulInteger"} <= ops and "LSTM" not in ops


def test_vocabulary_pruning_keeps_thelogits_of(student_dir: Path, tmp_path: Path) -> None:
    model, tokenizer = load_trained(student_dir), load_tokenizer(student_dir)
    before = logits_of(model, tokenizer(TEXTS, padding=True, return_tensors="pt"))
    new_tokenizer, kept = prune_vocabulary(model, tokenizer, TEXTS)
    assert kept["vocab_after"] < kept["vocab_before"] == len(tokenizer)
    assert model.get_input_embeddings().num_embeddings == kept["vocab_after"]
    batch = new_tokenizer(TEXTS, padding=True, return_tensors="pt")
    assert (logits_of(model, batch) - before).abs().max() < 1e-6
    kind_of(model).save(model, new_tokenizer, tmp_path / "pruned")
    assert torch.equal(logits_of(load_trained(tmp_path / "pruned"), batch), logits_of(model, batch))


def test_the_latency_workers_pytorch_engine_runs_it(student_dir: Path) -> None:
    from benchmarks.latency_worker import measure

    args = {"model_path": str(student_dir), "engine": "pytorch", "batch": 2, "seq_len": 12,
            "threads": 1, "warmup": 1, "iters": 3}  # fmt: skip
    result = measure(args)
    assert len(result["samples_ms"]) == 3 and all(ms > 0 for ms in result["samples_ms"])


def test_compress_runs_the_chain_with_the_bilstm_recipe(
    tiny_teacher_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = write_sst2_subset(tmp_path, 192, 96)
    recipe = load_recipe(RECIPES / "bilstm.yaml", {
        "data.source": str(data), "data.max_length": 48, "student.hidden": 16, "student.mlp": 16,
        "student.embedding_dim": 16, "augment.per_example": 1, "train.max_steps": 8,
        "train.batch_size": 32, "train.eval_every": 4, "train.checkpoint_every": 4,
        "export.parity_samples": 32,
    })  # fmt: skip
    run = tmp_path / "run"
    compress(str(tiny_teacher_dir), recipe, run, overwrite=False, resume=False,
             skip_benchmark=True)  # fmt: skip
    assert (run / "model" / "modeling_bilstm.py").is_file()
    # without a terminal, the stages that show a spinner log when they start and end
    log = capsys.readouterr().err
    for message in (
        "exporting the student to ONNX and checking parity",
        "quantizing (dynamic-int8) and checking agreement",
        "exporting the teacher to ONNX and quantizing it: the baseline to beat",
    ):
        assert f"{message} ..." in log and f"{message}: done in " in log, message  # fmt: skip
    state = json.loads((run / "state.json").read_text())["stages"]
    assert state["export"]["optimized"]["path"] is None
    assert "a bilstm student has none" in state["export"]["optimized"]["skipped"]
    assert state["distill"]["stages"][0]["losses"] == ["logits_mse"]
    # logits_mse reads the teacher's logits only: they come from the cache, not from a pass
    assert state["distill"]["stages"][0]["teacher_pass"] == "cached logits"
    assert state["distill"]["steps"] == 8 and "BiLSTM" in state["distill"]["student_source"]
    report = json.loads((run / "report.json").read_text())
    models = report["models"]
    assert {"student", "student_onnx", "student_int8"} <= set(models)
    assert "student_optimized" not in models
    md = (run / "report.md").read_text()
    for key, entry in models.items():
        assert 0.0 <= entry["dev_accuracy"] <= 1.0, key
        assert f"{entry['dev_accuracy'] * 100:.2f}%" in md, key
    # the fp32 file is the PyTorch student's function, so it scores the same on dev
    assert models["student_onnx"]["dev_accuracy"] == pytest.approx(
        models["student"]["dev_accuracy"], abs=1 / 96
    )
    student = models["student"]
    assert student["parameters"] - student["non_embedding_parameters"] == 405 * 16
    assert student["non_embedding_parameters"] == 2 * 4 * 16 * (16 + 16 + 2) + 32 * 16 + 16 + 34
    manifest = json.loads((run / "onnx" / "manifest.json").read_text())
    assert (
        manifest["onnx/model_int8.onnx"]["dev_accuracy"] == models["student_int8"]["dev_accuracy"]
    )
    assert np.isfinite(report["training"]["history"][-1]["loss"])
