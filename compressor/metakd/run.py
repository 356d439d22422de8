"""`compressor metakd`: prototype scores -> meta-teacher on all domains -> meta-distilled
student for the target domain, in one run folder.

    runs/<name>/  recipe.yaml  state.json  prototype_scores.json
                  teacher/ (HF)  teacher_domain_head.pt  model/ (the student, HF)
                  report.json  report.md

Each stage is recorded in `state.json`, so `--resume` skips what is done and continues an
interrupted training from its last checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import torch
from rich.console import Console

from compressor import atomic
from compressor.data import Split
from compressor.distill.trainer import seed_fresh_weights, total_steps, train
from compressor.errors import UserError
from compressor.markdown import table
from compressor.metakd.data import DomainData, load_domains
from compressor.metakd.objectives import DomainHead, MetaDistillObjective, MetaTeacherObjective
from compressor.metakd.prototypes import mean_pooled, prototype_scores
from compressor.models import count_parameters, load_classifier
from compressor.recipe import Recipe
from compressor.runfolder import RunFolder
from compressor.students import make_student

console = Console(stderr=True)
SCORES = "prototype_scores.json"
HEAD = "teacher_domain_head.pt"


def load_metakd_data(recipe: Recipe) -> tuple[DomainData, int]:
    """The domains and the target's index, after every input check."""
    cfg = recipe.metakd
    if cfg.target_domain is None:
        raise UserError("no target domain — pass --target-domain (one of the data's domains)")
    data = load_domains(
        recipe.data,
        domain_column=cfg.domain_column,
        dev_fraction=cfg.dev_fraction,
        target=cfg.target_domain,
        fraction=cfg.fraction,
    )
    return data, data.index(cfg.target_domain)


def _scores(run: RunFolder, model: str, recipe: Recipe, data: DomainData) -> list[float]:
    """t_i of every training example (all domains, in `joined` order), from the backbone's
    representations before any training, as EasyNLP's pipeline does."""
    if not run.done("prototypes"):
        backbone, tokenizer = load_classifier(model, len(data.label_names), data.label_names)
        split, ids = data.joined("train")
        with console.status("prototype scores of the training examples"):
            features = mean_pooled(backbone, tokenizer, split, max_length=recipe.data.max_length)
        scores = prototype_scores(
            features,
            torch.tensor(split.labels),
            torch.tensor(ids),
            len(data.domains),
            len(data.label_names),
            recipe.metakd.alpha,
        )
        atomic.write_json(run.path / SCORES, [round(float(s), 6) for s in scores])
        per_domain = {
            d.name: round(float(scores[torch.tensor(ids) == k].mean()), 4)
            for k, d in enumerate(data.domains)
        }
        run.complete("prototypes", mean_score_per_domain=per_domain)
    return atomic.read_json(run.path / SCORES)


def _domain_accuracies(model_dir: Path, data: DomainData, max_length: int) -> dict[str, float]:
    from compressor.inference import accuracy

    return {
        d.name: accuracy(model_dir, d.dev.texts, d.dev.pairs, d.dev.labels, max_length=max_length)
        for d in data.domains
    }


def relative_weights(scores: list[float]) -> list[float]:
    """The meta-teacher's instance weights: t_i clipped at 0 and divided by their mean over
    the training set. The cosines of eq. 1 sit near 0.3 on MiniLM, so raw t_i would act as a
    3x smaller learning rate (figures: README, Meta-KD deviations); scaled to mean 1, they
    only say which examples count more, which is what the paper's weighting is for."""
    clipped = [max(s, 0.0) for s in scores]
    mean = sum(clipped) / len(clipped)
    return [s / mean for s in clipped] if mean > 0 else [1.0] * len(clipped)


def _teacher(run: RunFolder, model: str, recipe: Recipe, data: DomainData, scores, resume):
    """Eqs. 2-3 on all domains. The teacher kept is the last one, not the best by dev
    accuracy: the domain head saved beside it must be the one it was trained with."""
    seed_fresh_weights(recipe.finetune.seed)
    teacher, tokenizer = load_classifier(model, len(data.label_names), data.label_names)
    head = DomainHead(teacher.config.hidden_size, len(data.domains))
    train_split, ids = data.joined("train")
    dev_split, _ = data.joined("dev")
    cfg = recipe.finetune.model_copy(update={"keep": "last"})
    state = train(
        teacher,
        tokenizer,
        train_split,
        dev_split,
        cfg,
        max_length=recipe.data.max_length,
        out_dir=run.path / "training" / "teacher",
        compute_loss=MetaTeacherObjective(head, recipe.metakd.gamma1),
        extra_modules=[head],
        resume=resume,
        description=f"meta-teacher on {len(data.domains)} domains",
        example_fields={"domain_ids": ids, "prototype_score": relative_weights(scores)},
    )
    run.promote(run.path / "training" / "teacher", run.path / "teacher")
    with atomic.atomic_file(run.path / HEAD) as tmp:
        torch.save(head.state_dict(), tmp)
    run.complete(
        "teacher",
        base_model=str(model),
        steps=state.step,
        train_examples=len(train_split),
        train_seconds=round(state.train_seconds, 3),
        train_samples_per_s=round(state.samples_per_second(cfg.batch_size, cfg.grad_accum), 2),
        history=state.history,
        dev_accuracy=_domain_accuracies(run.path / "teacher", data, recipe.data.max_length),
        parameters=count_parameters(teacher),
    )


def _target_part(data: DomainData, target: int, scores: list[float]) -> tuple[Split, list[float]]:
    """The target domain's training examples and their prototype scores."""
    start = sum(len(d.train) for d in data.domains[:target])
    split = data.domains[target].train
    return split, scores[start : start + len(split)]


def _student(run: RunFolder, recipe: Recipe, data: DomainData, target: int, scores, resume):
    """Meta-distillation into a student cut from the meta-teacher, on the target domain."""
    teacher, tokenizer = load_classifier(run.path / "teacher")
    teacher.requires_grad_(False)
    head = DomainHead(teacher.config.hidden_size, len(data.domains))
    head.load_state_dict(torch.load(run.path / HEAD, weights_only=True))
    split, target_scores = _target_part(data, target, scores)
    seed_fresh_weights(recipe.train.seed)
    student, student_tok = make_student(teacher, tokenizer, recipe.student, split.texts[:32])
    objective = MetaDistillObjective(
        teacher, student, recipe.distill, head, len(data.domains), recipe.metakd.gamma2
    )
    state = train(
        student,
        student_tok,
        split,
        data.domains[target].dev,
        recipe.train,
        max_length=recipe.data.max_length,
        out_dir=run.path / "training" / "student",
        compute_loss=objective,
        extra_modules=objective.modules,
        frozen_modules=objective.frozen,
        resume=resume,
        description=f"meta-distilling a {student.config.num_hidden_layers}-layer student",
        example_fields={"domain_ids": [target] * len(split), "prototype_score": target_scores},
    )
    run.promote(run.path / "training" / "student", run.path / "model")
    run.complete(
        "student",
        steps=state.step,
        best_step=state.best_step,
        dev_accuracy=state.best_dev_accuracy,
        train_examples=len(split),
        train_seconds=round(state.train_seconds, 3),
        train_samples_per_s=round(
            state.samples_per_second(recipe.train.batch_size, recipe.train.grad_accum), 2
        ),
        history=state.history,
        parameters=count_parameters(student),
        teacher_dev_accuracy_on_target=run.result("teacher")["dev_accuracy"][
            data.domains[target].name
        ],
    )


def metakd(model: str, recipe: Recipe, out: Path, *, overwrite: bool, resume: bool) -> dict:
    """The whole method; returns the report (also written as report.json / report.md)."""
    data, target = load_metakd_data(recipe)
    run = RunFolder.create(out, "metakd", recipe, overwrite=overwrite, resume=resume)
    scores = _scores(run, model, recipe, data)
    if not run.done("teacher"):
        _teacher(run, model, recipe, data, scores, resume)
    if not run.done("student"):
        _student(run, recipe, data, target, scores, resume)
    run.drop_training()
    return write_metakd_report(run, data)


def write_metakd_report(run: RunFolder, data: DomainData) -> dict:
    cfg = run.recipe().metakd
    teacher, student = run.result("teacher"), run.result("student")
    report = {
        "method": "Meta-KD (Pan et al., ACL 2021)",
        "data": {"source": data.source, "domains": data.names, "notes": data.notes},
        "target_domain": cfg.target_domain,
        "fraction": cfg.fraction,
        "settings": cfg.model_dump(mode="json"),
        "mean_prototype_score": run.result("prototypes")["mean_score_per_domain"],
        "meta_teacher": {
            k: teacher[k] for k in ("steps", "train_examples", "dev_accuracy", "parameters")
        },
        "student": {
            k: student[k]
            for k in ("steps", "best_step", "dev_accuracy", "train_examples", "parameters")
        },
    }
    lines = [
        f"# Meta-KD: student for `{cfg.target_domain}`",
        "",
        f"Data: {data.source} (domains {', '.join(data.names)}); {'; '.join(data.notes)}.",
        f"alpha {cfg.alpha}, gamma1 {cfg.gamma1}, gamma2 {cfg.gamma2}, "
        f"target fraction {cfg.fraction}.",
        "",
        table(
            ["model", "parameters", "steps", *data.names],
            [
                [
                    "meta-teacher",
                    f"{teacher['parameters']:,}",
                    teacher["steps"],
                    *(f"{teacher['dev_accuracy'][n]:.4f}" for n in data.names),
                ],
                [
                    f"student ({cfg.target_domain})",
                    f"{student['parameters']:,}",
                    student["steps"],
                    *(
                        f"{student['dev_accuracy']:.4f}" if n == cfg.target_domain else None
                        for n in data.names
                    ),
                ],
            ],
        ),
    ]
    atomic.write_json(run.path / "report.json", report)
    atomic.write_text(run.path / "report.md", "\n".join(lines))
    return report


def plan(model: str, recipe: Recipe) -> dict:
    """What `metakd` would do, after its input checks (for --dry-run)."""
    data, target = load_metakd_data(recipe)
    cfg = recipe.metakd
    teacher, _tok = load_classifier(model, len(data.label_names), data.label_names)
    train_split, _ = data.joined("train")
    target_train = data.domains[target].train
    terms = [f"{t.name}x{t.weight}" for t in recipe.distill.intermediate if t.weight > 0]
    return {
        "data": f"{data.source}: "
        + ", ".join(f"{d.name} {len(d.train)} train / {len(d.dev)} dev" for d in data.domains)
        + f" ({'; '.join(data.notes)})",
        "prototype scores": f"eq. 1 on {model}'s mean-pooled states, alpha {cfg.alpha}",
        "meta-teacher": f"{teacher.config.num_hidden_layers} layers, "
        f"{total_steps(recipe.finetune, len(train_split))} steps of batch "
        f"{recipe.finetune.batch_size} on all domains, gamma1 {cfg.gamma1}",
        "student": f"{recipe.student.layers} layers cut from the meta-teacher, "
        f"{total_steps(recipe.train, len(target_train))} steps on {cfg.target_domain} "
        f"({len(target_train)} examples, fraction {cfg.fraction}); lambda-weighted "
        f"KD alpha {recipe.distill.alpha} T {recipe.distill.temperature}, "
        f"intermediate={terms or 'none'}, transferable knowledge gamma2 {cfg.gamma2}",
        "recipe hash": recipe.hash(),
    }
