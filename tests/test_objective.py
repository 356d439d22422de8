"""The distillation objective's arithmetic and term set-up, on models with known outputs."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from compressor.distill.objective import DistillObjective
from compressor.recipe import DistillConfig, IntermediateLoss
from compressor.registry import STUDENT_KINDS
from compressor.students import Features, Wants


class FixedOutputs(nn.Module):
    """A stand-in model returning given logits and hidden states, so that the objective
    can be checked against numbers worked out by hand rather than against itself."""

    def __init__(self, logits: torch.Tensor, hidden: tuple[torch.Tensor, ...]):
        super().__init__()
        self.logits, self.hidden = logits, hidden
        self.config = SimpleNamespace(
            num_hidden_layers=len(hidden) - 1, hidden_size=hidden[0].shape[-1]
        )

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> SimpleNamespace:
        hidden = self.hidden if output_hidden_states else None
        return SimpleNamespace(logits=self.logits, hidden_states=hidden, attentions=None)


def _shaped(layers: int, width: int = 4) -> FixedOutputs:
    """Only the config is read while the objective builds its terms."""
    return FixedOutputs(torch.zeros(1, 2), (torch.zeros(1, 1, width),) * (layers + 1))


def _softmax(row: list[float], temperature: float) -> list[float]:
    exps = [math.exp(v / temperature) for v in row]
    return [e / sum(exps) for e in exps]


def test_objective_is_the_hinton_mix_plus_scheduled_terms() -> None:
    z_s, z_t, labels = [[1.0, 2.0], [0.0, 1.0]], [[2.0, 0.0], [0.5, 1.5]], [0, 1]
    h_t = torch.tensor([[[1.0, 1.0], [3.0, 3.0]], [[2.0, 2.0], [100.0, 100.0]]])
    student = FixedOutputs(torch.tensor(z_s), (torch.zeros(2, 2, 2), torch.zeros(2, 2, 2)))
    teacher = FixedOutputs(torch.tensor(z_t), (torch.zeros(2, 2, 2), h_t))
    cfg = DistillConfig(
        temperature=2.0, alpha=0.3, prediction_weight=0.5,
        intermediate=[IntermediateLoss(name="hidden_mse", weight=2.0, layer_map=[(1, 1)],
                                       schedule="linear_decay")],
    )  # fmt: skip
    batch = {
        "input_ids": torch.zeros(2, 2, dtype=torch.long),
        "attention_mask": torch.tensor([[1, 1], [1, 0]]),
        "labels": torch.tensor(labels),
    }
    loss, parts = DistillObjective(teacher, student, cfg)(student, batch, progress=0.25)

    t = 2.0
    kl = []
    for s_row, t_row in zip(z_s, z_t, strict=True):
        p_s, p_t = _softmax(s_row, t), _softmax(t_row, t)
        kl.append(sum(pt * math.log(pt / ps) for pt, ps in zip(p_t, p_s, strict=True)))
    kd = t**2 * sum(kl) / 2
    ce = -sum(math.log(_softmax(row, 1.0)[y]) for row, y in zip(z_s, labels, strict=True)) / 2
    # real tokens' mean squared error over the 2 dims: 1, 9, 4 (the padded 100s are out)
    hidden = (1 + 9 + 4) / 3
    expected = 0.5 * (0.3 * kd + 0.7 * ce) + 2.0 * (1 - 0.25) * hidden
    assert parts["soft_kd"] == pytest.approx(kd, rel=1e-6)
    assert parts["hard_ce"] == pytest.approx(ce, rel=1e-6)
    assert parts["hidden_mse"] == pytest.approx(hidden, rel=1e-6)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_an_unset_layer_map_takes_the_loss_papers_map() -> None:
    names = ["hidden_mse", "attention_mse", "attention_kl", "value_relation_kl",
             "hidden_cosine", "pkd_cls"]  # fmt: skip
    cfg = DistillConfig(
        intermediate=[IntermediateLoss(name=n) for n in names]
        + [IntermediateLoss(name="attention_kl", layer_map="uniform")]
    )
    assert all(spec.layer_map is None for spec in cfg.intermediate[:-1])
    objective = DistillObjective(_shaped(4), _shaped(2), cfg)
    pairs = [module.pairs for *_, module in objective.terms]
    assert pairs == [
        [(0, 0), (1, 2), (2, 4)],  # TinyBERT: uniform, with the embeddings
        [(1, 2), (2, 4)],  # TinyBERT attention: uniform, no embedding layer
        [(2, 4)],  # MiniLM: last layer
        [(2, 4)],
        [(2, 4)],  # DistilBERT: last hidden states
        [(1, 2)],  # PKD-Skip: the student's top layer is left to the predictions
        [(1, 2), (2, 4)],  # an explicit map wins over the default
    ]


class ToyKind:
    """A student kind that is no HF model: its forward returns a plain (logits, hidden)
    tuple, and only its adaptor knows that."""

    name = "toy"
    provides = Wants(hidden_states=True)

    def claims(self, config: dict) -> bool:
        return config.get("auto_map") == {"toy": "ToyStudent"}

    def dims(self, model: nn.Module) -> tuple[int, int]:
        return 1, model.hidden[0].shape[-1]

    def adapt(self, model: nn.Module, inputs: dict, wants: Wants) -> Features:
        logits, hidden = model(inputs["input_ids"])
        return Features(logits, hidden if wants.hidden_states else None)


class ToyStudent(nn.Module):
    def __init__(self, logits: torch.Tensor, hidden: tuple[torch.Tensor, ...]):
        super().__init__()
        self.logits, self.hidden = logits, hidden
        self.config = SimpleNamespace(auto_map={"toy": "ToyStudent"})

    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        return self.logits, self.hidden


def test_a_student_kind_is_read_through_its_adaptor(monkeypatch: pytest.MonkeyPatch) -> None:
    """The numbers of the Hinton-mix test above, with the student of another kind."""
    monkeypatch.setitem(STUDENT_KINDS._entries, "toy", ToyKind())
    z_s, z_t = [[1.0, 2.0], [0.0, 1.0]], [[2.0, 0.0], [0.5, 1.5]]
    h_t = torch.tensor([[[1.0, 1.0], [3.0, 3.0]], [[2.0, 2.0], [100.0, 100.0]]])
    student = ToyStudent(torch.tensor(z_s), (torch.zeros(2, 2, 2), torch.zeros(2, 2, 2)))
    teacher = FixedOutputs(torch.tensor(z_t), (torch.zeros(2, 2, 2), h_t))
    cfg = DistillConfig(
        temperature=1.0, alpha=0.0, prediction_weight=0.0,
        intermediate=[IntermediateLoss(name="hidden_mse", weight=1.0, layer_map=[(1, 1)])],
    )  # fmt: skip
    batch = {
        "input_ids": torch.zeros(2, 2, dtype=torch.long),
        "attention_mask": torch.tensor([[1, 1], [1, 0]]),
        "labels": torch.tensor([0, 1]),
    }
    loss, parts = DistillObjective(teacher, student, cfg)(student, batch)
    assert parts["hidden_mse"] == pytest.approx((1 + 9 + 4) / 3, rel=1e-6)
    assert loss.item() == pytest.approx((1 + 9 + 4) / 3, rel=1e-6)
    kl = sum(
        sum(pt * math.log(pt / ps) for pt, ps in zip(_softmax(t, 1), _softmax(s, 1), strict=True))
        for s, t in zip(z_s, z_t, strict=True)
    ) / 2  # fmt: skip
    assert parts["prediction_kl"] == pytest.approx(kl, rel=1e-6)
