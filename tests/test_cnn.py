"""The `cnn` student kind (AdaBERT's cells, architecture fixed in the recipe) through the
chain: built from a tiny BERT teacher, every operation run, trained on its logits, saved and
loaded by code that ships with the weights, exported, quantized and run by `compress`."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import onnxruntime as ort
import pytest
import torch

from compressor.distill.objective import DistillObjective
from compressor.errors import UserError
from compressor.models import count_parameters
from compressor.pipeline import compress
from compressor.recipe import (
    DistillConfig,
    IntermediateLoss,
    StudentConfig,
    load_recipe,
)
from compressor.students import kind_of, make_student
from compressor.students.cnn import CNN
from compressor.students.modeling_cnn import OPERATIONS
from exporters.onnx import export_onnx
from exporters.parity import check_parity
from tests.conftest import write_sst2_subset
from tests.custom_students import (
    RECIPES,
    TEXTS,
    Teacher,
    dynamic_int8,
    load_in_clean_process,
    logits_mse_training,
    logits_of,
    spread_teacher,
)

# every operation once, over two cells of three nodes
EVERY_OP = [
    [["conv3", 0, 2], ["conv5", 1, 2], ["conv7", 2, 3], ["dil_conv3", 0, 3],
     ["dil_conv5", 3, 4], ["max_pool3", 2, 4]],
    [["dil_conv7", 0, 2], ["avg_pool3", 1, 2], ["identity", 2, 3], ["zero", 1, 3]],
]  # fmt: skip
SMALL = StudentConfig(kind="cnn", hidden=12, mlp=16, cells=EVERY_OP)


@pytest.fixture(scope="module")
def teacher(tiny_teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Teacher:
    return spread_teacher(tiny_teacher_dir, tmp_path_factory.mktemp("spread"))


@pytest.fixture(scope="module")
def student_dir(teacher: Teacher, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    student, tokenizer = make_student(*teacher, SMALL, TEXTS)
    folder = tmp_path_factory.mktemp("cnn") / "student"
    CNN.save(student, tokenizer, folder)
    return folder


@pytest.fixture(scope="module")
def onnx_path(student_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(student_dir, tmp_path_factory.mktemp("export") / "onnx", opset=17)


def test_build_keeps_the_architecture_and_the_teachers_embeddings(teacher: Teacher) -> None:
    model, tokenizer = teacher
    student, student_tok = make_student(model, tokenizer, SMALL, TEXTS)
    assert student_tok is tokenizer and kind_of(student) is CNN
    assert torch.equal(student.embeddings.weight, model.get_input_embeddings().weight)
    assert {op for cell in EVERY_OP for op, _, _ in cell} == set(OPERATIONS)
    assert student.config.cells == EVERY_OP and CNN.dims(student) == (2, 12)
    convs = {"conv3": 3, "conv5": 5, "conv7": 7, "dil_conv3": 3, "dil_conv5": 5, "dil_conv7": 7}
    cells = sum(12 * 12 * width + 12 for width in convs.values())
    head = (32 * 12 + 12) + (12 * 16 + 16) + (16 * 2 + 2)  # projection, ReLU layer, classifier
    assert count_parameters(student, embeddings=False) == cells + head
    assert "CNN of 2 cells (10 edges), 12 channels" in CNN.describe(student)


def test_the_default_architecture_builds(teacher: Teacher) -> None:
    student, _ = make_student(*teacher, StudentConfig(kind="cnn", hidden=8, mlp=8), TEXTS)
    assert len(student.cells) == 2 and [len(c.edges) for c in student.cells] == [4, 4]
    batch = teacher[1](TEXTS[:4], padding=True, return_tensors="pt")
    assert logits_of(student, batch).shape == (4, 2)


@pytest.mark.parametrize(
    ("cells", "message"),
    [
        ([[["conv9", 0, 2]]], r"unknown operation 'conv9' \(known: conv3, conv5, conv7, "
         r"dil_conv3, dil_conv5, dil_conv7, max_pool3, avg_pool3, identity, zero\)"),
        ([[["conv3", 2, 2]]], r"edge conv3 2 -> 2 reads a node that is not computed"),
        ([[["conv3", 0, 3]]], r"edge targets \[3\] must be the nodes 2, 3, ... in turn"),
        ([], r"at least one cell"),
    ],
)  # fmt: skip
def test_a_wrong_architecture_is_a_one_line_user_error(
    teacher: Teacher, cells: list, message: str
) -> None:
    cfg = SMALL.model_copy(update={"cells": cells})
    with pytest.raises(UserError, match=rf"^student\.cells: .*{message}.* — fix") as info:
        make_student(*teacher, cfg, TEXTS)
    assert "\n" not in str(info.value)


def test_pairs_are_refused_as_siamese(teacher: Teacher) -> None:
    cfg = SMALL.model_copy(update={"siamese": True})
    with pytest.raises(UserError, match=r"^student\.siamese is the bilstm's pair model"):
        make_student(*teacher, cfg, TEXTS)


def test_pads_change_nothing(teacher: Teacher) -> None:
    """Neither the pad's embedding nor the length of the batch's longest sentence reaches a
    sentence's logits, through any operation of the architecture."""
    model, tokenizer = teacher
    torch.manual_seed(0)
    student, _ = make_student(model, tokenizer, SMALL, TEXTS)
    with torch.no_grad():  # a random CNN's logits differ little between sentences
        student.classifier.weight *= 50
    batch = tokenizer(TEXTS[:8], padding=True, return_tensors="pt")
    assert (batch["attention_mask"] == 0).sum() > 40
    padded = logits_of(student, batch)
    assert padded[:, 0].std() > 0.1  # spread across sentences, so equality means something
    alone = torch.cat([logits_of(student, tokenizer([t], return_tensors="pt")) for t in TEXTS[:8]])
    assert (padded - alone).abs().max() < 1e-4
    with torch.no_grad():
        student.embeddings.weight[tokenizer.pad_token_id] = 7.0
    assert (logits_of(student, batch) - padded).abs().max() < 1e-5


def test_logits_mse_training_lowers_the_loss(teacher: Teacher) -> None:
    losses, parts = logits_mse_training(teacher, SMALL)
    assert parts == {"logits_mse", "prediction_kl"}
    assert losses[0] > 0.5 and losses[-1] < 0.4 * losses[0]


def test_an_attention_loss_is_refused(teacher: Teacher) -> None:
    student, _ = make_student(*teacher, SMALL, TEXTS)
    cfg = DistillConfig(intermediate=[IntermediateLoss(name="attention_kl")])
    with pytest.raises(UserError, match=r"^loss attention_kl reads attentions, which a cnn "):
        DistillObjective(teacher[0], student, cfg)


def test_a_saved_student_loads_without_this_project(student_dir: Path, tmp_path: Path) -> None:
    config = json.loads((student_dir / "config.json").read_text())
    assert config["auto_map"]["AutoModelForSequenceClassification"] == (
        "modeling_cnn.CNNForSequenceClassification"
    )
    assert config["cells"] == EVERY_OP and kind_of(student_dir) is CNN
    assert (student_dir / "modeling_cnn.py").is_file()
    out, here = load_in_clean_process(student_dir, tmp_path)
    assert out["module"].startswith("transformers_modules.") and out["config"]["cells"] == EVERY_OP
    # another process may sum in another order (its thread count): equal up to rounding
    assert torch.allclose(torch.tensor(out["logits"]), here, rtol=0, atol=1e-5)
    assert here.std() > 0.01


def test_onnx_export_passes_parity_on_real_sentences(student_dir: Path, onnx_path: Path) -> None:
    config = json.loads((onnx_path.parents[1] / "config.json").read_text())
    assert config["model_type"] == "compressor-cnn" and "auto_map" not in config
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask"]
    assert [i.shape for i in session.get_inputs()] == [["batch", "sequence"]] * 2
    ops = [node.op_type for node in onnx.load(str(onnx_path)).graph.node]
    assert ops.count("Conv") == 7 and {"MaxPool", "AveragePool"} <= set(ops)  # 6 + projection
    parity = check_parity(student_dir, onnx_path, TEXTS, tolerance=1e-5, max_length=64)
    assert parity.passed and parity.n == 48 and parity.argmax_agreement == 1.0


def test_dynamic_int8_file_passes_its_agreement_gate(student_dir: Path, onnx_path: Path) -> None:
    """ORT's dynamic quantization turns every Conv (the projection and the cells' six) into
    ConvInteger and the ReLU layer's and classifier's MatMuls into MatMulInteger."""
    result = dynamic_int8(student_dir, onnx_path)
    assert result["path"] and result["parity"]["passed"]
    assert result["parity"]["argmax_agreement"] >= 0.9 and result["parity"]["n"] == 48
    ops = [node.op_type for node in onnx.load(result["path"]).graph.node]
    assert ops.count("ConvInteger") == 7 and ops.count("MatMulInteger") == 2
    assert "Conv" not in ops and "MatMul" not in ops


def test_compress_runs_the_chain_with_the_cnn_recipe(
    tiny_teacher_dir: Path, tmp_path: Path
) -> None:
    data = write_sst2_subset(tmp_path, 96, 64)
    recipe = load_recipe(RECIPES / "cnn.yaml", {
        "data.source": str(data), "data.max_length": 48, "student.hidden": 16, "student.mlp": 16,
        "student.embedding_dim": 16, "augment.per_example": 1, "train.max_steps": 6,
        "train.batch_size": 32, "train.eval_every": 3, "train.checkpoint_every": 3,
        "export.parity_samples": 32,
    })  # fmt: skip
    run = tmp_path / "run"
    compress(str(tiny_teacher_dir), recipe, run, overwrite=False, resume=False,
             skip_benchmark=True)  # fmt: skip
    assert (run / "model" / "modeling_cnn.py").is_file()
    saved = json.loads((run / "model" / "config.json").read_text())
    assert saved["cells"] == [[list(edge) for edge in cell] for cell in recipe.student.cells]
    state = json.loads((run / "state.json").read_text())["stages"]
    assert state["distill"]["stages"][0]["losses"] == ["logits_mse"]
    assert state["distill"]["steps"] == 6 and "CNN of 3 cells" in state["distill"]["student_source"]
    models = json.loads((run / "report.json").read_text())["models"]
    assert {"student", "student_onnx", "student_int8"} <= set(models)
    for key, entry in models.items():
        assert 0.0 <= entry["dev_accuracy"] <= 1.0, key
    assert models["student_onnx"]["dev_accuracy"] == pytest.approx(
        models["student"]["dev_accuracy"], abs=1 / 64
    )
