"""AdaBERT's search on a tiny teacher: the cost model, the derivation, a valid discrete
architecture, the efficiency term moving the choice towards cheaper operations, and the
stage that hands the architecture to distillation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from compressor.data import Split
from compressor.errors import UserError
from compressor.nas import SearchResult, adabert_search, architecture_cost
from compressor.nas.probes import attentive_weights, layer_map
from compressor.nas.supernet import SuperNet, edge_links, op_cost
from compressor.pipeline import compress
from compressor.recipe import AdaBertConfig, StudentConfig, load_recipe
from compressor.students import make_student
from compressor.students.modeling_cnn import CONVOLUTIONS, OPERATIONS, check_cells
from tests.conftest import sst2_rows, write_sst2_subset
from tests.custom_students import RECIPES, Teacher, logits_of, spread_teacher

ROWS = sst2_rows("train", limit=160)
SPLIT = Split([text for text, _ in ROWS], [label for _, label in ROWS])
STUDENT = StudentConfig(kind="cnn", hidden=16, mlp=16, embedding_dim=16,
                        cells=[[("identity", 1, 2)]])  # fmt: skip
QUICK = AdaBertConfig(enabled=True, max_cells=3, nodes=2, epochs=6, max_examples=160,
                      batch_size=16, probe_epochs=5, arch_lr=3e-2)  # fmt: skip


@pytest.fixture(scope="module")
def teacher(tiny_teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Teacher:
    return spread_teacher(tiny_teacher_dir, tmp_path_factory.mktemp("spread"))


def search(teacher: Teacher, **changes: object) -> SearchResult:
    model, tokenizer = teacher
    torch.manual_seed(0)
    base, _ = make_student(model, tokenizer, STUDENT, SPLIT.texts)
    cfg = QUICK.model_copy(update=changes)
    return adabert_search(model, tokenizer, base.embeddings, base.projection, SPLIT, cfg,
                          max_length=48)  # fmt: skip


@pytest.fixture(scope="module")
def found(teacher: Teacher) -> SearchResult:
    return search(teacher)


def test_the_cost_model_orders_the_operations() -> None:
    costs = {op: op_cost(op, 64) for op in OPERATIONS}
    assert costs["conv7"] == 1.0 and costs["identity"] == costs["zero"] == 0.0
    # a width-w convolution costs w/7 of a width-7 one (its bias and FLOPs scale alike, +-1 %)
    for op, (width, _dilation) in CONVOLUTIONS.items():
        assert costs[op] == pytest.approx(width / 7, rel=0.01), op
    assert 0 < costs["max_pool3"] == costs["avg_pool3"] < 0.01 * costs["conv3"]


def test_the_efficiency_term_spans_zero_to_one() -> None:
    net = SuperNet(nn.Embedding(10, 4), nn.Conv1d(4, 8, 1), max_cells=4, nodes=3, num_labels=2)
    assert len(edge_links(3)) == 2 + 3 + 4 == net.alpha.shape[0]
    with torch.no_grad():
        net.alpha.fill_(-50.0)
        net.alpha[:, OPERATIONS.index("conv7")] = 50.0
        net.depth.copy_(torch.tensor([-50.0, -50.0, -50.0, 50.0]))
    assert net.efficiency().item() == pytest.approx(1.0, abs=1e-4)
    with torch.no_grad():
        net.alpha.fill_(-50.0)
        net.alpha[:, OPERATIONS.index("identity")] = 50.0
    assert net.efficiency().item() == pytest.approx(0.0, abs=1e-4)
    with torch.no_grad():  # uniform over operations and depths: the mean cost, at 2.5 / 4 depth
        net.alpha.zero_()
        net.depth.zero_()
    mean_cost = sum(op_cost(op, 8) for op in OPERATIONS) / len(OPERATIONS)
    assert net.efficiency().item() == pytest.approx(2.5 / 4 * mean_cost, rel=1e-5)


def test_derive_drops_zero_edges_and_keeps_every_node_reachable() -> None:
    net = SuperNet(nn.Embedding(10, 4), nn.Conv1d(4, 8, 1), max_cells=3, nodes=2, num_labels=2)
    zero, conv5, pool = (OPERATIONS.index(op) for op in ("zero", "conv5", "max_pool3"))
    with torch.no_grad():
        net.alpha.zero_()
        net.alpha[:, zero] = 5.0  # every edge prefers zero ...
        net.alpha[0, conv5] = 6.0  # ... but 0 -> 2 prefers conv5
        net.alpha[3, pool] = 1.0  # and 1 -> 3 has max_pool3 as its best non-zero operation
        net.alpha[4, conv5] = 0.5
        net.depth.copy_(torch.tensor([0.0, 2.0, 1.0]))
    cell, depth = net.derive()
    assert edge_links(2) == [(0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]
    assert cell == [["conv5", 0, 2], ["max_pool3", 1, 3]] and depth == 2
    check_cells([cell])


def test_the_search_picks_a_valid_architecture(teacher: Teacher, found: SearchResult) -> None:
    check_cells(found.cells)
    assert 1 <= found.depth <= 3 and len(found.cells) == found.depth
    assert all(cell == found.cells[0] for cell in found.cells)
    assert all(op != "zero" for op, _, _ in found.cells[0])
    assert found.cost == pytest.approx(architecture_cost(found.cells, 16), abs=1e-4)
    assert len(found.operations) == len(edge_links(2))
    for row in found.operations:
        assert set(row) == set(OPERATIONS) and sum(row.values()) == pytest.approx(1, abs=1e-3)
    assert sum(found.depth_probabilities) == pytest.approx(1, abs=1e-3)
    # probes on the 4 teacher layers, cell i on layer ceil(i * 4 / 3), weights a softmax
    assert len(found.probe_accuracies) == 4 and found.layer_map == [1, 2, 3]
    assert sum(found.kd_weights) == pytest.approx(1, abs=1e-3)
    assert found.examples == 160 and found.steps == 6 * (80 // 16)
    assert [h["step"] for h in found.history] == [5, 10, 15, 20, 25, 30]
    assert all(h["tau"] == pytest.approx(0.98 ** h["epoch"], abs=1e-4) for h in found.history)
    # the searched architecture is a student that builds and runs
    model, tokenizer = teacher
    student, _ = make_student(model, tokenizer, STUDENT.model_copy(update={"cells": found.cells}),
                              SPLIT.texts)  # fmt: skip
    batch = tokenizer(SPLIT.texts[:4], padding=True, return_tensors="pt")
    assert logits_of(student, batch).shape == (4, 2)


def test_the_search_learns_the_task(found: SearchResult) -> None:
    first, last = found.history[0], found.history[-1]
    assert last["ce"] < first["ce"] and last["kd"] < first["kd"]


def test_a_larger_beta_chooses_cheaper_operations(teacher: Teacher) -> None:
    free, cheap = search(teacher, beta=0.0), search(teacher, beta=50.0)
    assert [op for cell in free.cells for op, _, _ in cell if op in CONVOLUTIONS]
    assert not [op for cell in cheap.cells for op, _, _ in cell if op in CONVOLUTIONS]
    assert cheap.cost < free.cost and cheap.depth <= free.depth
    assert cheap.history[-1]["efficiency"] < free.history[-1]["efficiency"]


def test_probe_helpers() -> None:
    assert layer_map(3, 4) == [1, 2, 3] and layer_map(4, 12) == [2, 5, 8, 11]
    assert layer_map(8, 6) == [0, 1, 2, 2, 3, 4, 5, 5]
    weights = attentive_weights([0.7, 0.5, 0.3], [0, 2, 2])
    assert weights.tolist() == pytest.approx(
        torch.softmax(torch.tensor([-0.7, -0.3, -0.3]), 0).tolist()
    )


def test_the_search_is_refused_for_other_kinds() -> None:
    with pytest.raises(UserError, match=r"adabert\.enabled searches a cnn student's cells"):
        load_recipe(None, {"adabert.enabled": True})


def test_compress_searches_then_distils_the_searched_cells(
    tiny_teacher_dir: Path, tmp_path: Path
) -> None:
    data = write_sst2_subset(tmp_path, 160, 64)
    recipe = load_recipe(RECIPES / "adabert.yaml", {
        "data.source": str(data), "data.max_length": 48, "student.hidden": 16, "student.mlp": 16,
        "student.embedding_dim": 16, "augment.enabled": False, "adabert.max_cells": 2,
        "adabert.nodes": 2, "adabert.epochs": 1, "adabert.batch_size": 16,
        "adabert.probe_epochs": 2, "train.max_steps": 4, "train.batch_size": 16,
        "train.eval_every": 4, "train.checkpoint_every": 4,
    })  # fmt: skip
    run = tmp_path / "run"
    compress(str(tiny_teacher_dir), recipe, run, overwrite=False, resume=False,
             skip_benchmark=True, skip_export=True)  # fmt: skip
    state = json.loads((run / "state.json").read_text())["stages"]
    searched = state["adabert"]["cells"]
    assert json.loads((run / "adabert.json").read_text())["cells"] == searched
    config = json.loads((run / "model" / "config.json").read_text())
    assert config["cells"] == searched and len(searched) == state["adabert"]["depth"]
    assert f"CNN of {len(searched)} cells" in state["distill"]["student_source"]
