"""HomoDistil pruning: schedule, importance, masks that equal the cut model, the pruner's
schedule and its resumable state."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    RobertaConfig,
    RobertaForMaskedLM,
    RobertaForSequenceClassification,
)

from compressor.distill.objective import DistillObjective
from compressor.distill.trainer import train
from compressor.errors import UserError
from compressor.models import count_parameters
from compressor.prune.importance import IMPORTANCE
from compressor.prune.pruner import Pruner, targets
from compressor.prune.schedule import cubic_progress, is_pruning_step, kept_count
from compressor.prune.shrink import shrink
from compressor.prune.units import UnitMasks, layout_of, non_embedding_parameters, sensitivity
from compressor.recipe import DistillConfig, PruneConfig, TrainConfig
from tests.test_trainer import Interrupt, _no_dropout, _splits


def _model(cls=BertForSequenceClassification, config_cls=BertConfig, seed: int = 0):
    """4 heads of size 8 over hidden 32, 3 layers, FFN 64; weights spread (std 0.3) so that
    a wrong slice changes the logits visibly."""
    torch.manual_seed(seed)
    config = config_cls(
        vocab_size=120, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=64, num_labels=3, initializer_range=0.3,
    )  # fmt: skip
    return cls(config).eval()


def _inputs(seed: int = 1) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    ids = torch.randint(5, 120, (4, 12))
    mask = torch.ones_like(ids)
    mask[0, 7:] = 0
    mask[2, 10:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def test_cubic_schedule_values() -> None:
    assert cubic_progress(10, 10, 70) == 0.0
    assert cubic_progress(40, 10, 70) == pytest.approx(1 - 0.5**3)
    assert cubic_progress(70, 10, 70) == 1.0 and cubic_progress(99, 10, 70) == 1.0
    assert kept_count(12, 4, 0.875) == 5  # 12 - round(8 * 0.875)
    assert kept_count(12, 4, 1.0) == 4 and kept_count(12, 4, 0.0) == 12
    steps = [s for s in range(100) if is_pruning_step(s, 10, 65, 10)]
    assert steps == [20, 30, 40, 50, 60, 65]  # the end step always prunes


@pytest.mark.parametrize(
    ("cls", "config_cls", "auto"),
    [
        (BertForSequenceClassification, BertConfig, AutoModelForSequenceClassification),
        (RobertaForSequenceClassification, RobertaConfig, AutoModelForSequenceClassification),
        (BertForMaskedLM, BertConfig, AutoModelForMaskedLM),
        (RobertaForMaskedLM, RobertaConfig, AutoModelForMaskedLM),
    ],
)
def test_cut_model_computes_what_the_masked_model_did(
    cls, config_cls, auto, tmp_path: Path
) -> None:
    model = _model(cls, config_cls)
    layout = layout_of(model)
    masks = UnitMasks(layout, ("heads", "ffn", "hidden"))
    m = masks.masks
    m["heads"][0, [1, 3]] = 0  # layers keep 2, 1 and 3 heads: non-uniform
    m["heads"][1, [0, 1, 2]] = 0
    m["heads"][2, 2] = 0
    m["ffn"].zero_()
    for layer in range(3):
        m["ffn"][layer, torch.randperm(64)[:40]] = 1
    m["hidden"][torch.randperm(32)[:8]] = 0  # 24 = 3 heads of 8
    inputs = _inputs()
    full = model(**inputs).logits
    with masks.applied(layout):
        masked = model(**inputs).logits
    assert (masked - full).abs().max() > 1e-2  # the masks do change the model
    counted = non_embedding_parameters(layout, hidden=24, heads=2 + 1 + 3, ffn=3 * 40)
    shrink(model, layout, masks)
    assert count_parameters(model, embeddings=False) == counted
    cut = model(**inputs).logits
    torch.testing.assert_close(cut, masked, rtol=0, atol=1e-5)
    config = model.config
    assert (config.hidden_size, config.intermediate_size, config.num_attention_heads) == (24, 40, 3)
    if layout.out_tied:  # a masked LM's decoder is tied to the sliced word embeddings
        assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    model.save_pretrained(tmp_path)
    reloaded = auto.from_pretrained(tmp_path).eval()
    heads = [
        layer.attention.self.num_attention_heads for layer in reloaded.base_model.encoder.layer
    ]
    assert heads == [2, 1, 3]
    torch.testing.assert_close(reloaded(**inputs).logits, cut, rtol=0, atol=1e-6)
    assert sum(p.numel() for p in reloaded.parameters()) < sum(
        p.numel() for p in _model(cls, config_cls).parameters()
    )


def test_sensitivity_is_theta_times_grad_per_unit_and_zero_for_masked_units() -> None:
    model = _model()
    layout = layout_of(model)
    masks = UnitMasks(layout, ("heads", "ffn", "hidden"))
    masks.masks["heads"][1, 2] = 0
    masks.masks["ffn"][0, 5] = 0
    masks.masks["hidden"][7] = 0
    with masks.applied(layout):
        model(**_inputs(), labels=torch.tensor([0, 1, 2, 1])).loss.backward()
    heads, ffn, hidden = (sensitivity(layout, kind) for kind in ("heads", "ffn", "hidden"))
    assert heads.shape == (3, 4) and ffn.shape == (3, 64) and hidden.shape == (32,)

    def tg(p: torch.Tensor) -> torch.Tensor:
        return (p * p.grad).abs()

    attn = model.bert.encoder.layer[0].attention
    rows = slice(8, 16)  # head 1 of layer 0
    expected = sum(tg(lin.weight)[rows].sum() + tg(lin.bias)[rows].sum()
                   for lin in (attn.self.query, attn.self.key, attn.self.value))  # fmt: skip
    expected = expected + tg(attn.output.dense.weight)[:, rows].sum()
    assert heads[0, 1].item() == pytest.approx(expected.item(), rel=1e-5)
    layer = model.bert.encoder.layer[2]
    neuron = (tg(layer.intermediate.dense.weight)[9].sum() + tg(layer.intermediate.dense.bias)[9]
              + tg(layer.output.dense.weight)[:, 9].sum())  # fmt: skip
    assert ffn[2, 9].item() == pytest.approx(neuron.item(), rel=1e-5)
    assert heads[1, 2] == 0 and ffn[0, 5] == 0 and hidden[7] == 0
    assert (heads > 0).sum() == 11 and (hidden > 0).sum() == 31


def test_importance_criteria_on_known_sequences() -> None:
    ema = IMPORTANCE["sensitivity"](beta1=0.5, beta2=0.9)
    platon = IMPORTANCE["platon"](beta1=0.5, beta2=0.9)
    for value in (1.0, 2.0, 4.0):
        ema.update("ffn", torch.tensor([value]))
        platon.update("ffn", torch.tensor([value]))
    # ema: 1 -> 1.5 -> 2.75; uncertainty: 0 -> 0.1 * 0.5 = 0.05 -> 0.9 * 0.05 + 0.1 * 1.25
    assert ema.score("ffn").item() == pytest.approx(2.75)
    assert platon.score("ffn").item() == pytest.approx(2.75 * (0.045 + 0.125))


def test_targets_from_the_recipe_and_their_errors() -> None:
    layout = layout_of(_model())
    # half of 26,787 non-embedding weights: 2 heads (3,144 a head in every layer) and 28
    # FFN neurons (195 a neuron in every layer) over the 1,731 of biases, norms and pooler
    assert targets(PruneConfig(budget=0.5), layout) == {"heads": 2, "ffn": 28}
    # hidden 16 holds 2 heads of 8: the head target follows it
    assert targets(PruneConfig(hidden=16), layout) == {"heads": 2, "hidden": 16}
    with pytest.raises(UserError, match="not a multiple of the head size 8"):
        targets(PruneConfig(hidden=20), layout)
    with pytest.raises(UserError, match="does not fit hidden width 16"):
        targets(PruneConfig(hidden=16, heads=3), layout)
    with pytest.raises(UserError, match="exceeds the model's 64"):
        targets(PruneConfig(ffn=100), layout)


@pytest.mark.parametrize(
    ("budget", "hidden", "scope"),
    [
        (0.5, None, "layer"),
        (0.3, None, "layer"),
        (0.8, None, "global"),
        (0.6, 24, "layer"),
        (0.3, 16, "layer"),
        (0.2, 16, "global"),
    ],
)
def test_budget_is_the_cut_models_share_of_non_embedding_parameters(
    budget: float, hidden: int | None, scope: str
) -> None:
    model = _model()
    original = count_parameters(model, embeddings=False)
    layout = layout_of(model)
    pruner = Pruner(layout, PruneConfig(budget=budget, hidden=hidden, head_scope=scope), 10)
    with pruner.masks.applied(layout):
        model(**_inputs(), labels=torch.tensor([0, 1, 2, 1])).loss.backward()
    pruner.after_backward()
    pruner.prune_to(1.0)
    remaining = pruner.remaining_fraction()
    shrink(model, layout, pruner.masks)
    cut = count_parameters(model, embeddings=False)
    width = hidden or 32
    neuron_in_every_layer = 3 * (2 * width + 1)  # the finest unit the solve can move by
    assert abs(cut - budget * original) <= neuron_in_every_layer / 2
    assert remaining == pytest.approx(cut / original)
    assert model.config.hidden_size == width


def test_budget_out_of_reach_at_the_hidden_width_is_refused() -> None:
    layout = layout_of(_model())
    # at width 16 (2 heads of 8) the most that fits is 2 heads and all 64 FFN neurons: 38 %
    with pytest.raises(UserError, match=r"out of reach at hidden width 16: .* and 37.9%"):
        targets(PruneConfig(budget=0.5, hidden=16), layout)
    with pytest.raises(UserError, match="out of reach at hidden width 16"):
        targets(PruneConfig(budget=0.01, hidden=16), layout)


def _run_pruner(model, cfg: PruneConfig, total: int) -> tuple[Pruner, list[dict]]:
    layout = layout_of(model)
    pruner = Pruner(layout, cfg, total)
    snapshots = []
    with pruner.masks.applied(layout):
        for step in range(1, total + 1):
            model.zero_grad()
            model(**_inputs(step), labels=torch.tensor([0, 1, 2, 1])).loss.backward()
            pruner.after_backward()
            pruner.after_step(step, {"prediction_kl": 0.0})
            snapshots.append({k: v.clone() for k, v in pruner.masks.masks.items()})
    return pruner, snapshots


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_pruner_follows_the_cubic_schedule_and_never_revives_a_unit(scope: str) -> None:
    cfg = PruneConfig(ffn=16, hidden=16, heads=1, head_scope=scope, begin=0.1, end=0.7, every=4)
    pruner, snapshots = _run_pruner(_model(), cfg, total=40)
    assert (pruner.begin, pruner.end) == (4, 28)
    for step, masks in enumerate(snapshots, start=1):
        last_event = max(s for s in range(step + 1) if s <= 4 or is_pruning_step(s, 4, 28, 4))
        progress = cubic_progress(last_event, 4, 28)
        assert masks["ffn"].sum(1).tolist() == [kept_count(64, 16, progress)] * 3
        assert masks["hidden"].sum().item() == kept_count(32, 16, progress)
        assert masks["heads"].sum().item() == 3 * kept_count(4, 1, progress)
        if step > 1:
            for kind, mask in masks.items():
                assert (mask <= snapshots[step - 2][kind]).all(), (kind, step)
    final = pruner.masks.kept()
    assert final["ffn"] == [16, 16, 16] and final["hidden"] == 16
    assert sum(final["heads"]) == 3 and min(final["heads"]) >= 1
    layout = pruner.layout
    assert pruner.trace[-1]["remaining"] == pytest.approx(
        non_embedding_parameters(layout, 16, 3, 48) / non_embedding_parameters(layout, 32, 12, 192),
        abs=1e-5,
    )


def test_global_head_scope_ranks_across_layers_within_the_width_cap() -> None:
    from compressor.prune.pruner import _top_global

    score = torch.tensor([[9.0, 8.0, 7.0, 6.0], [0.1, 0.2, 0.3, 0.4], [5.0, 0.0, 0.0, 0.0]])
    keep = _top_global(score, total=6, cap=3)
    # each layer's best first (9, 0.4, 5), then 8, 7 and 0.3: layer 0's 6.0 is over the cap
    assert keep.sum(1).tolist() == [3, 2, 1]
    assert keep[0, 3] == 0 and keep[1, 2] == 1 and keep[2, 0] == 1


def test_resumed_pruning_run_prunes_exactly_like_an_uninterrupted_one(
    tiny_teacher_dir: Path, tmp_path: Path
) -> None:
    train_split, dev_split = _splits()
    cfg = TrainConfig(max_steps=10, batch_size=8, lr=1e-3, eval_every=5, checkpoint_every=2,
                      warmup_ratio=0.0)  # fmt: skip
    prune_cfg = PruneConfig(enabled=True, ffn=16, heads=2, begin=0.1, end=0.8, every=2)

    def run(out: Path, resume: bool = False, stop: int | None = None):
        teacher, tok = _no_dropout(tiny_teacher_dir)
        student, _ = _no_dropout(tiny_teacher_dir)
        layout = layout_of(student)
        pruner = Pruner(layout, prune_cfg, 10)
        objective = DistillObjective(teacher.requires_grad_(False), student, DistillConfig())

        def stop_at(step: int) -> None:
            if step == stop:
                raise Interrupt

        with pruner.masks.applied(layout):
            state = train(student, tok, train_split, dev_split, cfg, max_length=64, out_dir=out,
                          compute_loss=objective, extra_modules=objective.modules,
                          frozen_modules=objective.frozen, resume=resume, on_step=stop_at,
                          hooks=pruner, keep_from_step=pruner.end)  # fmt: skip
        return state, pruner

    straight, p_straight = run(tmp_path / "a")
    with pytest.raises(Interrupt):
        run(tmp_path / "b", stop=7)
    resumed, p_resumed = run(tmp_path / "b", resume=True)
    assert [t["step"] for t in p_resumed.trace] == list(range(1, 11))
    for kind, mask in p_straight.masks.masks.items():
        assert torch.equal(mask, p_resumed.masks.masks[kind]), kind
    assert p_resumed.masks.kept() == {"heads": [2, 2, 2, 2], "ffn": [16, 16, 16, 16]}
    for a, b in zip(p_straight.trace, p_resumed.trace, strict=True):
        assert a["remaining"] == b["remaining"]
        assert a["prediction_kl"] == pytest.approx(b["prediction_kl"], rel=1e-4, abs=1e-7)
    assert straight.best_step >= p_straight.end and resumed.best_step >= p_resumed.end
    assert math.isclose(straight.best_dev_accuracy, resumed.best_dev_accuracy)


def test_importance_undoes_gradient_clipping() -> None:
    """The trainer clips gradients before the pruner reads them; the pruner divides the clip
    factor out, so its scores are the paper's |theta * grad| whatever the clipping did."""
    from compressor.distill.trainer import clip_factor

    scores = []
    for factor in (1.0, 0.25):
        model = _model()
        layout = layout_of(model)
        pruner = Pruner(layout, PruneConfig(heads=2, ffn=32), 10)
        with pruner.masks.applied(layout):
            model(**_inputs(), labels=torch.tensor([0, 1, 2, 1])).loss.backward()
        for p in model.parameters():
            if p.grad is not None:
                p.grad.mul_(factor)  # what clip_grad_norm_ would have done
        pruner.after_backward(factor)
        scores.append(pruner.criterion.score("ffn"))
    torch.testing.assert_close(scores[1], scores[0])
    assert clip_factor(4.0) == pytest.approx(0.25, rel=1e-5)
    assert clip_factor(0.5) == 1.0 and clip_factor(float("inf")) == 0.0
