"""The training loop: it learns, keeps the best model, and resumes exactly where it stopped."""

import contextlib
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, BertConfig
from transformers.trainer_pt_utils import LengthGroupedSampler

from compressor.data import Split
from compressor.distill.objective import DistillObjective
from compressor.distill.trainer import LengthGroupedEpochs, latest_checkpoint, train
from compressor.errors import UserError
from compressor.models import load_classifier
from compressor.recipe import DistillConfig, StudentConfig, TrainConfig
from compressor.students.transformer import build_student
from tests.conftest import sst2_rows


def _splits(n_train: int = 64, n_dev: int = 32) -> tuple[Split, Split]:
    rows = sst2_rows("dev")
    train = rows[:n_train]
    dev = rows[n_train : n_train + n_dev]
    return (
        Split([t for t, _ in train], [y for _, y in train]),
        Split([t for t, _ in dev], [y for _, y in dev]),
    )


def _ce(model, batch, progress):
    out = model(**batch)
    return out.loss, {}


class Interrupt(Exception):
    pass


def _no_dropout(model_dir: Path):
    model, tok = load_classifier(model_dir)
    model.config.hidden_dropout_prob = model.config.attention_probs_dropout_prob = 0.0
    model = type(model)(model.config)
    model.load_state_dict(load_classifier(model_dir)[0].state_dict())
    return model, tok


def test_resumed_run_continues_from_its_step_and_ends_identical(
    tiny_teacher_dir: Path, tmp_path: Path
) -> None:
    train_split, dev_split = _splits()
    cfg = TrainConfig(
        max_steps=8, batch_size=8, lr=1e-3, eval_every=4, checkpoint_every=2, warmup_ratio=0.0
    )
    model, tok = _no_dropout(tiny_teacher_dir)
    straight = train(
        model,
        tok,
        train_split,
        dev_split,
        cfg,
        max_length=64,
        out_dir=tmp_path / "a",
        compute_loss=_ce,
    )
    assert straight.step == 8

    def stop_at_5(step: int) -> None:
        if step == 5:
            raise Interrupt

    model, tok = _no_dropout(tiny_teacher_dir)
    with pytest.raises(Interrupt):
        train(
            model,
            tok,
            train_split,
            dev_split,
            cfg,
            max_length=64,
            out_dir=tmp_path / "b",
            compute_loss=_ce,
            on_step=stop_at_5,
        )
    assert latest_checkpoint(tmp_path / "b" / "checkpoints").name == "step-4"

    seen: list[int] = []
    model, tok = _no_dropout(tiny_teacher_dir)
    resumed = train(
        model,
        tok,
        train_split,
        dev_split,
        cfg,
        max_length=64,
        out_dir=tmp_path / "b",
        compute_loss=_ce,
        resume=True,
        on_step=seen.append,
    )
    assert seen == [5, 6, 7, 8]  # continued from step 4, not from 0
    assert resumed.step == 8
    assert [h["step"] for h in resumed.history] == [4, 8]
    a = load_file(tmp_path / "a" / "checkpoints" / "step-8" / "model.safetensors")
    b = load_file(tmp_path / "b" / "checkpoints" / "step-8" / "model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)


def test_best_model_is_kept_and_loadable(tiny_teacher_dir: Path, tmp_path: Path) -> None:
    train_split, dev_split = _splits(128, 64)
    model, tok = load_classifier(tiny_teacher_dir)
    cfg = TrainConfig(max_steps=12, batch_size=16, lr=2e-3, eval_every=3, checkpoint_every=6)
    state = train(
        model, tok, train_split, dev_split, cfg, max_length=64, out_dir=tmp_path, compute_loss=_ce
    )
    accs = [h["dev_accuracy"] for h in state.history]
    assert [h["step"] for h in state.history] == [3, 6, 9, 12]
    assert state.best_dev_accuracy == max(accs)
    assert state.train_seconds > 0
    assert state.samples_per_second(16, 1) == pytest.approx(12 * 16 / state.train_seconds)
    assert state.best_step == state.history[accs.index(max(accs))]["step"]
    best = AutoModelForSequenceClassification.from_pretrained(tmp_path / "best")
    assert isinstance(best.config, BertConfig)
    assert (tmp_path / "best" / "tokenizer.json").is_file() or (
        tmp_path / "best" / "vocab.txt"
    ).is_file()


def test_distillation_pulls_student_towards_teacher(tiny_teacher_dir: Path, tmp_path: Path) -> None:
    train_split, dev_split = _splits(128, 32)
    teacher, tok = load_classifier(tiny_teacher_dir)
    with torch.no_grad():  # a teacher with confident, non-trivial predictions
        teacher.classifier.weight.mul_(50)
    teacher.requires_grad_(False)
    student = build_student(teacher, StudentConfig(layers=1, init=[0]))
    with torch.no_grad():  # start from the opposite opinion, so there is a gap to close
        student.classifier.weight.copy_(-teacher.classifier.weight)
        student.classifier.bias.copy_(-teacher.classifier.bias)
    objective = DistillObjective(teacher, student, DistillConfig(alpha=1.0, temperature=1.0))
    batch = tok(dev_split.texts, padding=True, return_tensors="pt")

    def gap() -> float:
        teacher.eval(), student.eval()
        on_device = batch.to(student.device)  # the trainer moves models to the GPU if any
        with torch.no_grad():
            t = torch.log_softmax(teacher.to(student.device)(**on_device).logits, -1)
            s = torch.log_softmax(student(**on_device).logits, -1)
        return float(torch.nn.functional.kl_div(s, t, log_target=True, reduction="batchmean"))

    before = gap()
    assert before > 0.01
    cfg = TrainConfig(max_steps=30, batch_size=16, lr=3e-3, eval_every=30, checkpoint_every=30)
    train(
        student,
        tok,
        train_split,
        dev_split,
        cfg,
        max_length=64,
        out_dir=tmp_path,
        compute_loss=objective,
        extra_modules=objective.modules,
        frozen_modules=[teacher],
    )
    assert gap() < before * 0.5


def test_nan_loss_stops_with_a_clear_error(tiny_teacher_dir: Path, tmp_path: Path) -> None:
    train_split, dev_split = _splits(16, 8)
    model, tok = load_classifier(tiny_teacher_dir)

    def nan_loss(m, batch, progress):
        return m(**batch).loss * float("nan"), {}

    with pytest.raises(UserError, match="loss became nan at step 0"):
        train(
            model,
            tok,
            train_split,
            dev_split,
            TrainConfig(max_steps=2, batch_size=8),
            max_length=32,
            out_dir=tmp_path,
            compute_loss=nan_loss,
        )


def test_every_registered_loss_runs_on_real_models(tiny_teacher_dir: Path) -> None:
    from compressor.distill.losses import INTERMEDIATE_LOSSES
    from compressor.recipe import IntermediateLoss

    teacher, tok = load_classifier(tiny_teacher_dir)
    teacher.requires_grad_(False)
    student = build_student(teacher, StudentConfig(layers=2))
    batch = dict(tok(["a charming , often affecting journey .", "bleak"], padding=True,
                     return_tensors="pt"))  # fmt: skip
    batch["labels"] = torch.tensor([1, 0])
    for name in INTERMEDIATE_LOSSES:
        layer_map = "last" if name == "attention_kl" else "uniform"
        cfg = DistillConfig(intermediate=[IntermediateLoss(name=name, layer_map=layer_map)])
        objective = DistillObjective(teacher, student, cfg)
        student.zero_grad()
        loss, parts = objective(student, batch)
        loss.backward()
        assert torch.isfinite(loss) and parts[name] >= 0, name
        grad = student.bert.encoder.layer[0].attention.self.query.weight.grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_logs_without_a_terminal_get_progress_lines(
    tiny_teacher_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch
) -> None:
    """CI and `nohup` see no bar: a line with step / total, loss, samples/s and ETA must
    come every COMPRESSOR_LOG_EVERY_S seconds (0 here: every step)."""
    monkeypatch.setenv("COMPRESSOR_LOG_EVERY_S", "0")
    train_split, dev_split = _splits(48, 16)
    model, tok = load_classifier(tiny_teacher_dir)
    cfg = TrainConfig(max_steps=6, batch_size=8, eval_every=100, checkpoint_every=100)
    train(model, tok, train_split, dev_split, cfg, max_length=32, out_dir=tmp_path,
          compute_loss=_ce, description="tuning")  # fmt: skip
    pattern = r"tuning: step (\d)/6, loss (\d+\.\d{4}), ([\d.]+) samples/s, ETA (\d+):(\d\d):(\d\d)"
    lines = re.findall(pattern, capsys.readouterr().out)
    assert sorted({int(step) for step, *_ in lines}) == [1, 2, 3, 4, 5, 6]
    assert all(float(rate) > 0 and 0 < float(loss) < 5 for _, loss, rate, *_ in lines)
    last = [eta for step, _, _, *eta in lines if step == "6"]
    assert last and all(eta == ["0", "00", "00"] for eta in last)


def _padding_and_order(
    tiny_teacher_dir: Path, tmp_path: Path, grouped: bool, stop_at: int | None = None
) -> tuple[float, list[list[int]], Path]:
    """Train 20 steps of 8 (1.25 epochs of 128 sentences); return the share of padded tokens,
    each batch's first token ids per row (the order), and the run folder."""
    train_split, dev_split = _splits(n_train=128)
    cfg = TrainConfig(max_steps=20, batch_size=8, lr=1e-3, eval_every=4, checkpoint_every=2,
                      warmup_ratio=0.0, group_by_length=grouped)  # fmt: skip
    padded = real = 0
    order: list[list[int]] = []

    def loss(model, batch, progress):
        nonlocal padded, real
        mask = batch["attention_mask"]
        padded += int((mask == 0).sum())
        real += int(mask.sum())
        order.append(batch["input_ids"][:, 1].tolist())
        return _ce(model, batch, progress)

    def stop(step: int) -> None:
        if step == stop_at:
            raise Interrupt

    out = tmp_path / f"{grouped}-{stop_at}"
    model, tok = _no_dropout(tiny_teacher_dir)
    with pytest.raises(Interrupt) if stop_at else contextlib.nullcontext():
        train(model, tok, train_split, dev_split, cfg, max_length=64, out_dir=out,
              compute_loss=loss, on_step=stop)  # fmt: skip
    return padded / (padded + real), order, out


def test_length_grouped_batches_pad_less_and_resume_in_the_same_order(
    tiny_teacher_dir: Path, tmp_path: Path
) -> None:
    shuffled, _, _ = _padding_and_order(tiny_teacher_dir, tmp_path, grouped=False)
    grouped, order, straight = _padding_and_order(tiny_teacher_dir, tmp_path, grouped=True)
    assert grouped < 0.6 * shuffled, (grouped, shuffled)  # 17 % of tokens against 35 %
    assert order[16:20] != order[:4]  # epoch 2 draws a new order
    # killed in the second epoch at step 18, resumed: the same batches, the same weights
    _, before, killed = _padding_and_order(tiny_teacher_dir, tmp_path, True, stop_at=18)
    model, tok = _no_dropout(tiny_teacher_dir)
    after: list[list[int]] = []
    train_split, dev_split = _splits(n_train=128)
    cfg = TrainConfig(max_steps=20, batch_size=8, lr=1e-3, eval_every=4, checkpoint_every=2,
                      warmup_ratio=0.0, group_by_length=True)  # fmt: skip
    train(model, tok, train_split, dev_split, cfg, max_length=64, out_dir=killed, resume=True,
          compute_loss=lambda m, b, p: (after.append(b["input_ids"][:, 1].tolist()),
                                        _ce(m, b, p))[1])  # fmt: skip
    assert before[:18] + after == order
    a = load_file(straight / "checkpoints" / "step-20" / "model.safetensors")
    b = load_file(killed / "checkpoints" / "step-20" / "model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)


def test_grouped_batches_are_transformers_batches_in_random_order() -> None:
    lengths = [(7 * i) % 61 + 1 for i in range(132)]  # 16 batches of 8 and one of 4
    epochs = []
    for epoch in (0, 1):
        sampler = LengthGroupedEpochs(lengths, batch_size=8, seed=3)
        sampler.set_epoch(epoch)
        order = list(sampler)
        seeded = torch.Generator().manual_seed(3 * 100_003 + epoch)
        grouped = list(LengthGroupedSampler(8, lengths=lengths, generator=seeded))
        ours = [order[i : i + 8] for i in range(0, 132, 8)]
        theirs = [grouped[i : i + 8] for i in range(0, 132, 8)]
        # the same whole batches (little padding in each), the partial one still last...
        assert sorted(ours[:-1]) == sorted(theirs[:-1]) and ours[-1] == theirs[-1]
        # ...but not in groups running from their longest sentences to their shortest
        assert ours != theirs
        epochs.append(order)
    assert epochs[0] != epochs[1]
