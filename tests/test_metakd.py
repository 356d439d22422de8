"""Meta-KD: prototype scores, domain-expertise weights, the adversarial gradient, the seeded
domain split, and `compressor metakd` end to end on a slice of sentiment3."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForSequenceClassification

from compressor.metakd.data import load_domains
from compressor.metakd.objectives import DomainHead, domain_adversarial_ce
from compressor.metakd.prototypes import expertise_weights, prototype_scores
from compressor.recipe import DataConfig
from tests.conftest import SHARED_DATA
from tests.test_cli import cli

SENTIMENT3 = SHARED_DATA / "sentiment3"
R = 1 / math.sqrt(2)


def test_prototype_scores_by_hand() -> None:
    # domain 0 class 0: (1,0), (0,1) -> prototype (.5,.5); domain 1: (1,0); domain 2: (0,1)
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    labels = torch.zeros(4, dtype=torch.long)
    domains = torch.tensor([0, 0, 1, 2])
    scores = prototype_scores(features, labels, domains, 3, 1, alpha=0.5)
    # t = alpha cos(own) + (1 - alpha) / (K - 1) * sum of the other domains' cosines
    expected = [0.5 * R + 0.25 * (1 + 0), 0.5 * R + 0.25 * (0 + 1), 0.5 + 0.25 * (R + 0),
                0.5 + 0.25 * (R + 0)]  # fmt: skip
    assert scores.tolist() == pytest.approx(expected, abs=1e-6)
    own_only = prototype_scores(features, labels, domains, 3, 1, alpha=1.0)
    assert own_only.tolist() == pytest.approx([R, R, 1.0, 1.0], abs=1e-6)


def test_prototype_scores_skip_a_missing_class_prototype() -> None:
    # domain 1 has no class-1 example: example 1's other-domain term is domain 2's alone
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1, 0, 0, 1])
    domains = torch.tensor([0, 0, 1, 2, 2])
    scores = prototype_scores(features, labels, domains, 3, 2, alpha=0.5)
    assert scores[1].item() == pytest.approx(0.5 * 1 + 0.5 * 1, abs=1e-6)
    assert scores[0].item() == pytest.approx(0.5 * 1 + 0.25 * (1 + R), abs=1e-6)


def test_meta_teacher_weights_keep_their_ratios_at_mean_one() -> None:
    from compressor.metakd.run import relative_weights

    # clipped at 0, then scaled by 1 / mean(0.2, 0.4, 0, 0.6) = 1 / 0.3
    weights = relative_weights([0.2, 0.4, -0.1, 0.6])
    assert weights == pytest.approx([2 / 3, 4 / 3, 0.0, 2.0])
    assert sum(weights) / len(weights) == pytest.approx(1.0)
    assert relative_weights([-0.5, 0.0]) == [1.0, 1.0]  # nothing typical: plain CE


def test_expertise_weights_by_hand() -> None:
    scores = torch.tensor([0.0, 1.0, 0.0, 0.5])
    logits = torch.tensor([[30.0, -30.0], [30.0, -30.0], [-30.0, 30.0], [0.0, 0.0]])
    labels = torch.zeros(4, dtype=torch.long)
    weights = expertise_weights(scores, logits, labels)
    # (1 + t) / (exp((1 - p_gold)^2) + 1): right and typical weighs most, wrong least
    expected = [0.5, 1.0, 1 / (math.e + 1), 1.5 / (math.exp(0.25) + 1)]
    assert weights.tolist() == pytest.approx(expected, abs=1e-6)


def test_adversarial_gradient_pushes_the_encoder_toward_confusion() -> None:
    torch.manual_seed(0)
    head = DomainHead(8, 3)
    pooled = torch.randn(12, 8, requires_grad=True)
    domains = torch.arange(12) % 3
    loss = domain_adversarial_ce(head, pooled, domains)
    loss.backward()
    plain = pooled.detach().clone().requires_grad_(True)
    F.cross_entropy(head(plain, domains), domains).backward()
    assert torch.allclose(pooled.grad, -plain.grad)  # the encoder's gradient is reversed
    with torch.no_grad():  # a descent step on the encoder's side raises the domain loss
        stepped = pooled - 0.5 * pooled.grad
        assert F.cross_entropy(head(stepped, domains), domains) > loss
        before = loss.item()
        for p in head.parameters():  # while the classifier's own step lowers it
            p -= 0.5 * p.grad
        assert F.cross_entropy(head(pooled, domains), domains).item() < before


def test_seeded_split_is_reproducible_disjoint_and_nested() -> None:
    cfg = DataConfig(source=str(SENTIMENT3))
    first = load_domains(cfg, domain_column=None, dev_fraction=0.2)
    again = load_domains(cfg, domain_column=None, dev_fraction=0.2)
    assert first.names == ["amazon", "imdb", "yelp"]
    for a, b in zip(first.domains, again.domains, strict=True):
        assert (a.train.texts, a.dev.texts) == (b.train.texts, b.dev.texts)
        assert (len(a.train), len(a.dev)) == (800, 200)
        rows = (SENTIMENT3 / f"{a.name}.tsv").read_text(encoding="utf-8").splitlines()[1:]
        assert Counter(a.train.texts) + Counter(a.dev.texts) == Counter(
            r.rsplit("\t", 1)[0] for r in rows
        )
    other = load_domains(cfg.model_copy(update={"seed": 7}), domain_column=None, dev_fraction=0.2)
    assert other.domains[0].dev.texts != first.domains[0].dev.texts
    ten = load_domains(cfg, domain_column=None, dev_fraction=0.2, target="imdb", fraction=0.1)
    twenty = load_domains(cfg, domain_column=None, dev_fraction=0.2, target="imdb", fraction=0.2)
    assert len(ten.domains[1].train) == 80
    assert ten.domains[1].train.texts == twenty.domains[1].train.texts[:80]
    assert ten.domains[1].dev.texts == first.domains[1].dev.texts  # dev never shrinks
    assert ten.domains[0].train.texts == first.domains[0].train.texts


def write_slice(folder: Path, rows: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("amazon", "imdb", "yelp"):
        lines = (SENTIMENT3 / f"{name}.tsv").read_text(encoding="utf-8").splitlines()
        (folder / f"{name}.tsv").write_text("\n".join(lines[: rows + 1]) + "\n", "utf-8")
    return folder


def test_metakd_cli_end_to_end(tmp_path: Path, tiny_teacher_dir: Path) -> None:
    data = write_slice(tmp_path / "data", 40)
    out = tmp_path / "run"
    args = ["metakd", "--model", str(tiny_teacher_dir), "--data", str(data), "--out", str(out),
            "--target-domain", "yelp", "--fraction", "0.5", "--layers", "2",
            "--teacher-steps", "3", "--steps", "3", "--batch-size", "8"]  # fmt: skip
    result = cli(*args)
    assert result.returncode == 0, result.stderr
    student = AutoModelForSequenceClassification.from_pretrained(out / "model")
    assert student.config.num_hidden_layers == 2
    assert not any("domain" in p.name for p in (out / "model").iterdir())
    assert (out / "teacher" / "config.json").is_file()
    assert (out / "teacher_domain_head.pt").is_file()
    report = json.loads((out / "report.json").read_text())
    assert set(report["meta_teacher"]["dev_accuracy"]) == {"amazon", "imdb", "yelp"}
    assert report["student"]["train_examples"] == 16  # half of yelp's 32 training rows
    assert report["student"]["steps"] == 3 and report["meta_teacher"]["steps"] == 3
    assert not (out / "training").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--target-domain", "books"], "domain 'books' is not in"),
        (["--target-domain", "imdb", "--fraction", "1.5"], "metakd.fraction"),
        (["--target-domain", "imdb", "--fraction", "0"], "metakd.fraction"),
        ([], "no target domain"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path,
    tiny_teacher_dir: Path,
    extra: list[str],
    message: str,
) -> None:
    data = write_slice(tmp_path / "data", 10)
    done = cli("metakd", "--model", str(tiny_teacher_dir), "--data", str(data), "--out",
               str(tmp_path / "run"), "--dry-run", *extra, env={"COLUMNS": "400"})  # fmt: skip
    code, err = done.returncode, done.stderr.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and message in err, err


def test_dry_run_prints_the_plan(tmp_path: Path, tiny_teacher_dir: Path) -> None:
    data = write_slice(tmp_path / "data", 10)
    result = cli("metakd", "--model", str(tiny_teacher_dir), "--data", str(data), "--out",
                 str(tmp_path / "run"), "--target-domain", "imdb", "--dry-run")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "meta-teacher" in result.stdout and "imdb" in result.stdout
    assert not (tmp_path / "run").exists()


def test_bench_runs_the_four_models_of_one_target(
    tmp_path: Path, tiny_teacher_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmarks.experiments import metakd_compare
    from tests.test_results import assert_published

    tiny = {"finetune.max_steps": 2, "train.max_steps": 2, "student.layers": 2,
            "finetune.batch_size": 8, "train.batch_size": 8}  # fmt: skip
    monkeypatch.setattr(metakd_compare, "SHARED", {**metakd_compare.SHARED, **tiny})
    data = write_slice(tmp_path / "data", 30)
    row = metakd_compare.run_target(str(tiny_teacher_dir), data, "imdb", 0.5, tmp_path / "b")
    assert row["train_examples"] == 12 and row["dev_examples"] == 6
    assert all(0 <= row[k] <= 1 for k in "abcd")
    again = metakd_compare.run_target(str(tiny_teacher_dir), data, "imdb", 0.5, tmp_path / "b")
    assert again == row  # finished runs are reused, not retrained
    metakd_compare.write_table(tmp_path / "b", [row], results=tmp_path / "results")
    assert "| imdb | 50% (12) |" in (tmp_path / "b" / "table.md").read_text()
    published = assert_published(tmp_path / "results" / "bench-metakd.md",
                                 tmp_path / "b" / "table.md")  # fmt: skip
    assert "Data: data, each domain split" in published
    assert "by a shuffle seeded with (42, domain name)" in published
    assert f"backbone {tiny_teacher_dir}; training seed 42, max length 64." in published
