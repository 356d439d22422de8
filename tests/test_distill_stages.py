"""Multi-stage recipes (TinyBERT's two stages), several teachers, and pre-trained students."""

import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import (
    AutoModelForSequenceClassification,
    BertTokenizerFast,
    DistilBertTokenizerFast,
)

from compressor import pipeline
from compressor.distill.losses import soft_kd
from compressor.distill.objective import DistillObjective
from compressor.errors import UserError
from compressor.models import load_classifier, load_extra_teacher
from compressor.pipeline import distill as distill_stage
from compressor.recipe import DistillConfig, ExtraTeacher, StudentConfig, load_recipe
from compressor.runfolder import RunFolder
from compressor.students.transformer import build_student
from tests.conftest import build_distilbert, build_tokenizer, save_variant, write_sst2_subset

BASE = {
    "train.max_steps": 4,
    "train.batch_size": 16,
    "train.lr": 0.003,
    "train.eval_every": 2,
    "train.checkpoint_every": 2,
    "data.max_length": 32,
    "student.layers": 2,
    "quantize.mode": "none",
    "export.parity_samples": 8,
}
TWO_STAGES = [
    {
        "name": "intermediate",
        "distill": {
            "prediction_weight": 0.0,
            "intermediate": [{"name": "hidden_mse"}, {"name": "attention_mse"}],
        },
        "train": {"keep": "last"},
    },
    {"name": "prediction", "distill": {"intermediate": [], "alpha": 1.0, "temperature": 1.0}},
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sst2_subset(tmp_path_factory.mktemp("data"), 64, 32)


def _recipe(data_dir: Path, **extra: object):
    return load_recipe(None, {**BASE, "data.source": str(data_dir), **extra})


def _classifier(folder: Path) -> dict[str, torch.Tensor]:
    weights = load_file(folder / "model.safetensors")
    return {k: v for k, v in weights.items() if k.startswith(("classifier.", "bert.pooler."))}


def test_two_stage_tinybert_trains_the_classifier_only_in_stage_two(
    tiny_teacher_dir: Path, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = _recipe(data_dir, stages=TWO_STAGES)
    calls: list[str] = []
    real_train = distill_stage.train

    def crash_in_stage_two(*args, **kwargs):
        calls.append(kwargs["description"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_train(*args, **kwargs)

    monkeypatch.setattr(distill_stage, "train", crash_in_stage_two)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        pipeline.compress(str(tiny_teacher_dir), recipe, out, overwrite=False, resume=False,
                          skip_benchmark=True)  # fmt: skip
    run = RunFolder.open(out)
    assert run.done("distill:intermediate") and not run.done("distill")
    stage_one = _classifier(out / "stages" / "intermediate")
    # no prediction loss in stage 1: the head and pooler are exactly the teacher's
    for key, value in stage_one.items():
        assert torch.equal(value, load_file(tiny_teacher_dir / "model.safetensors")[key]), key
    assert run.result("distill:intermediate")["kept"] == "last"

    monkeypatch.setattr(
        distill_stage, "train", lambda *a, **k: calls.append("resumed") or real_train(*a, **k)
    )
    pipeline.compress(str(tiny_teacher_dir), recipe, out, overwrite=False, resume=True,
                      skip_benchmark=True)  # fmt: skip
    assert calls[2:] == ["resumed"]  # stage 1 is not trained again
    distill = RunFolder.open(out).result("distill")
    assert [s["name"] for s in distill["stages"]] == ["intermediate", "prediction"]
    assert distill["stages"][0]["losses"] == ["hidden_mse", "attention_mse"]
    assert distill["stages"][1]["losses"] == ["soft_kd", "hard_ce"]
    assert distill["steps"] == 8
    changed = _classifier(out / "model")
    assert any(not torch.equal(v, stage_one[k]) for k, v in changed.items())
    assert not (out / "stages").exists() and not (out / "training").exists()
    report = (out / "report.md").read_text()
    assert "Stages: intermediate (4 steps, hidden_mse + attention_mse, kept last) → " in report


def test_stage_overrides_are_validated_with_their_path(data_dir: Path) -> None:
    with pytest.raises(UserError, match=r"stages\.0\.distill\.alpha"):
        _recipe(data_dir, stages=[{"name": "a", "distill": {"alpha": 2}}])
    with pytest.raises(UserError, match=r"stages\.0\.train\.lr_typo: unknown key"):
        _recipe(data_dir, stages=[{"name": "a", "train": {"lr_typo": 1}}])
    with pytest.raises(UserError, match="leaves no loss"):
        _recipe(data_dir, **{"distill.prediction_weight": 0.0, "distill.intermediate": []})


def test_several_teachers_give_the_weighted_mean_of_their_targets(
    tiny_teacher_dir: Path, tmp_path: Path
) -> None:
    teacher, tok = load_classifier(tiny_teacher_dir)
    other_dir = save_variant(tiny_teacher_dir, tmp_path / "other", seed=3, initializer_range=0.3)
    other, _ = load_classifier(other_dir)
    student = build_student(teacher, StudentConfig(layers=2))
    for model in (teacher, other, student):
        model.eval()
    batch = dict(tok(["a gorgeous film", "dull and lifeless"], padding=True, return_tensors="pt"))
    batch["labels"] = torch.tensor([1, 0])
    cfg = DistillConfig(
        alpha=1.0, temperature=2.0, intermediate=[], teacher_weight=1.0,
        extra_teachers=[ExtraTeacher(model=str(other_dir), weight=3.0)],
    )  # fmt: skip
    objective = DistillObjective(teacher, student, cfg, [(other, 3.0)])
    _, parts = objective(student, batch)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        z_s, z_1, z_2 = (m(**inputs).logits for m in (student, teacher, other))
    p_t = 0.25 * torch.softmax(z_1 / 2, -1) + 0.75 * torch.softmax(z_2 / 2, -1)
    log_p_s = torch.log_softmax(z_s / 2, -1)
    expected = float((p_t * (p_t.log() - log_p_s)).sum(-1).mean()) * 4
    assert parts["soft_kd"] == pytest.approx(expected, rel=1e-4)
    assert parts["soft_kd"] != pytest.approx(soft_kd(z_s, z_1, 2.0).item(), rel=1e-3)


def test_a_pretrained_distilbert_student_learns_from_a_bert_teacher(
    tiny_teacher_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    student_dir = build_distilbert(tmp_path / "distil", vocab_words=400)
    assert BertTokenizerFast.from_pretrained(tiny_teacher_dir).get_vocab() == (
        DistilBertTokenizerFast.from_pretrained(student_dir).get_vocab()
    )
    terms = [{"name": n} for n in ("hidden_mse", "attention_mse", "value_relation_kl")]
    recipe = _recipe(data_dir, **{"student.model": str(student_dir),
                                  "distill.intermediate": terms})  # fmt: skip
    out = tmp_path / "run"
    pipeline.compress(str(tiny_teacher_dir), recipe, out, overwrite=False, resume=False,
                      skip_benchmark=True)  # fmt: skip
    student = AutoModelForSequenceClassification.from_pretrained(out / "model")
    assert student.config.model_type == "distilbert" and student.config.dim == 16
    state = RunFolder.open(out).state["stages"]
    assert state["distill"]["student_source"] == str(student_dir)
    assert state["export"]["parity"]["passed"]
    assert 0 <= state["evaluate"]["dev_accuracy"]["student"] <= 1


def test_a_student_with_another_vocabulary_is_refused(
    tiny_teacher_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    student_dir = build_distilbert(tmp_path / "distil", vocab_words=300)
    recipe = _recipe(data_dir, **{"student.model": str(student_dir)})
    with pytest.raises(UserError, match="tokenizer does not match the teacher's"):
        pipeline.plan(str(tiny_teacher_dir), recipe)


def test_an_extra_teacher_with_another_tokenizer_is_refused(
    tiny_teacher_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    other_dir = save_variant(tiny_teacher_dir, tmp_path / "other", seed=3)
    build_tokenizer(other_dir, vocab_words=300)  # same architecture, another vocabulary
    recipe = _recipe(data_dir, **{"distill.extra_teachers": [{"model": str(other_dir)}]})
    who = re.escape(f"extra teacher {other_dir}")
    refused = f"{who}: its tokenizer does not match the teacher's.*distill.extra_teachers"
    with pytest.raises(UserError, match=refused):
        pipeline.plan(str(tiny_teacher_dir), recipe)


def test_an_extra_teacher_with_another_label_set_is_refused(
    tiny_teacher_dir: Path, tmp_path: Path
) -> None:
    teacher, tok = load_classifier(tiny_teacher_dir)
    samples = ["a gorgeous film"]
    three = save_variant(tiny_teacher_dir, tmp_path / "three", seed=3, num_labels=3)
    who = re.escape(f"extra teacher {three}")
    refused = f"{who} has 3 classes but the main teacher has 2 — use a teacher fine-tuned"
    with pytest.raises(UserError, match=refused):
        load_extra_teacher(str(three), teacher, tok, samples)
    swapped = save_variant(
        tiny_teacher_dir, tmp_path / "swapped", seed=3,
        id2label={0: "LABEL_1", 1: "LABEL_0"}, label2id={"LABEL_1": 0, "LABEL_0": 1},
    )  # fmt: skip
    who = re.escape(f"extra teacher {swapped}")
    names = re.escape("['LABEL_1', 'LABEL_0'] but the main teacher ['LABEL_0', 'LABEL_1']")
    with pytest.raises(UserError, match=f"{who} names its classes {names}.*fix id2label"):
        load_extra_teacher(str(swapped), teacher, tok, samples)
    same = save_variant(tiny_teacher_dir, tmp_path / "same", seed=3)
    model = load_extra_teacher(str(same), teacher, tok, samples)
    assert not any(p.requires_grad for p in model.parameters())


def test_frozen_word_embeddings_stay_the_teachers_through_both_stages(
    tiny_teacher_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    recipe = _recipe(data_dir, stages=TWO_STAGES)  # fixed by default for a cut transformer
    trained = {"student.freeze_word_embeddings": False}
    assert recipe.hash() != _recipe(data_dir, stages=TWO_STAGES, **trained).hash()
    out = tmp_path / "run"
    pipeline.compress(str(tiny_teacher_dir), recipe, out, overwrite=False, resume=False,
                      skip_benchmark=True, skip_export=True)  # fmt: skip
    teacher = load_file(tiny_teacher_dir / "model.safetensors")
    student = load_file(out / "model" / "model.safetensors")
    key = "bert.embeddings.word_embeddings.weight"
    assert torch.equal(student[key], teacher[key])
    # the rest of the embedding block and the kept layers did train
    assert not torch.equal(student["bert.embeddings.LayerNorm.weight"],
                           teacher["bert.embeddings.LayerNorm.weight"])  # fmt: skip
    assert RunFolder.open(out).result("distill")["word_embeddings"] == "frozen"
