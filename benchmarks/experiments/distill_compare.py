"""Side-by-side distillation methods on one teacher, data, student size, step count and seeds.

`make bench-distill` runs this on the demo teacher (all-MiniLM-L6-v2 fine-tuned on SST-2):
each method is one recipe from `recipes/` with the demo's data and training settings laid
over it, so only the loss terms (and, for TinyBERT, its stages and augmented data) differ.
Every method trains the same number of optimizer steps (a multi-stage recipe splits them
evenly over its stages) except the retention regime, whose point is three to five times as
many steps for little more time. Each (method, seed) is its own run folder, so an interrupted
comparison continues where it stopped. Writes `table.json` and `table.md` in the output after
every run and, once all runs are in, benchmarks/results/bench-distill.md and .json.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import yaml

from benchmarks.experiments.results import RESULTS, write_results
from compressor import atomic, markdown
from compressor.pipeline import compress
from compressor.recipe import load_recipe
from compressor.runfolder import RunFolder

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
STEPS = 400
RESULTS_NAME = "bench-distill"
REGIME = {"student.freeze_word_embeddings": True, "train.group_by_length": True}
# key -> (label, recipe file or None for defaults, extra dotted overrides)
METHODS: dict[str, tuple[str, str | None, dict]] = {
    "labels": ("(a) labels only (no teacher)", None,
               {"distill.alpha": 0.0, "distill.intermediate": []}),
    "kd": ("(b) Hinton KD", "kd.yaml", {}),
    "kd_hidden": ("(c) KD + hidden MSE (the default loss, trained as before the regime)", None,
                  {}),
    "kd_hidden_live": ("(c) with the teacher run on every batch (no teacher-states store)", None,
                       {"distill.teacher_states_mb": 0}),
    "tinybert_one_stage": ("(d) TinyBERT-style, one stage (KD + emb + hidden + attention)",
                           "tinybert_one_stage.yaml", {}),
    "tinybert": ("(d') TinyBERT, two stages + augmentation", "tinybert.yaml", {}),
    "minilm": ("(e) MiniLM-style (KD + last-layer attention KL + value relation)",
               "minilm.yaml", {}),
    "pkd": ("PKD-skip", "pkd.yaml", {}),
    "distilbert": ("DistilBERT-style (KD + cosine)", "distilbert.yaml", {}),
    "retention_demo": ("(f') retention regime at the demo's share: 3 epochs, word embeddings "
                       "frozen, batches grouped by length (compress's default)",
                       "retention.yaml", {**REGIME, "train.max_steps": 3 * STEPS}),
    "retention": ("(f) retention regime: (c) for 5 epochs, word embeddings frozen, batches "
                  "grouped by length", "retention.yaml", {**REGIME, "train.max_steps": 5 * STEPS}),
    "retention_demo_bf16": ("(f'') (f') in bfloat16 autocast (accelerate's mixed_precision "
                            "bf16)", "retention.yaml",
                            {**REGIME, "train.max_steps": 3 * STEPS,
                             "train.mixed_precision": "bf16"}),
}  # fmt: skip
# Every row but the regime's trains as `compress` did before the regime became its default:
# one pass (here a step count), every weight trained, batches in random order.
SHARED = {
    "data.max_train_examples": 12800,
    "train.max_steps": STEPS,
    "train.epochs": 1,
    "train.group_by_length": False,
    "student.freeze_word_embeddings": False,
    "train.lr": 2e-4,
    "train.eval_every": 100,
    "train.checkpoint_every": 100,
    "student.layers": 3,
    "quantize.mode": "none",
}


def method_recipe(key: str, seed: int):
    """The method's recipe with the shared settings; stages split the step budget."""
    _label, recipe_name, overrides = METHODS[key]
    overrides = {**SHARED, **overrides, "train.seed": seed}
    if recipe_name:
        tree = yaml.safe_load((RECIPES / recipe_name).read_text(encoding="utf-8"))
        stages = tree.get("stages", [])
        for stage in stages:
            stage.setdefault("train", {})["max_steps"] = STEPS // len(stages)
        if stages:
            overrides["stages"] = stages
    return load_recipe(RECIPES / recipe_name if recipe_name else None, overrides)


def run_one(teacher: str, key: str, seed: int, out: Path) -> None:
    run_dir = out / key / f"seed-{seed}"
    started = (run_dir / "state.json").is_file()
    if not started or not RunFolder.open(run_dir).done("evaluate"):
        compress(teacher, method_recipe(key, seed), run_dir, overwrite=False, resume=started,
                 skip_benchmark=True, skip_export=True)  # fmt: skip


def collect(out: Path) -> list[dict]:
    """Every finished (method, seed) under `out`, from earlier invocations too."""
    rows = []
    for key in METHODS:
        for run_dir in sorted((out / key).glob("seed-*")):
            if (run_dir / "state.json").is_file() and RunFolder.open(run_dir).done("evaluate"):
                rows.append(row_of(key, int(run_dir.name.split("-")[1]), RunFolder.open(run_dir)))
    return rows


def row_of(key: str, seed: int, state: RunFolder) -> dict:
    """One finished run's figures (`task_retention` reads its runs the same way)."""
    distill, accs = state.result("distill"), state.result("evaluate")["dev_accuracy"]
    return {
        "method": key,
        "seed": seed,
        "dev_accuracy": accs["student"],
        "teacher_dev_accuracy": accs["teacher"],
        "steps": distill["steps"],
        "train_examples": distill["train_examples"],
        "train_samples_per_s": distill["train_samples_per_s"],
        "train_seconds": distill["train_seconds"],
    }


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and sample standard deviation over seeds, per method, in METHODS order."""
    table = []
    for key, (label, recipe_name, _) in METHODS.items():
        runs = [r for r in rows if r["method"] == key]
        if not runs:
            continue
        accs = [r["dev_accuracy"] for r in runs]
        table.append({
            "method": label,
            "recipe": recipe_name or "defaults",
            "seeds": [r["seed"] for r in runs],
            "dev_accuracy_mean": statistics.fmean(accs),
            "dev_accuracy_std": statistics.stdev(accs) if len(accs) > 1 else None,
            "dev_accuracy_per_seed": accs,
            "teacher_dev_accuracy": runs[0]["teacher_dev_accuracy"],
            "steps": runs[0]["steps"],
            "train_examples": runs[0]["train_examples"],
            "train_samples_per_s_mean": statistics.fmean(r["train_samples_per_s"] for r in runs),
            "train_minutes_mean": statistics.fmean(r["train_seconds"] for r in runs) / 60,
        })  # fmt: skip
    return table


def write_table(out: Path, rows: list[dict], *, results: Path | None = None) -> list[dict]:
    """The summary into the run folder and, once every run is in (`results` set), into the
    committed results file: the same text in both."""
    table = summarise(rows)
    data = {"runs": rows, "methods": table, "settings": SHARED}
    text = render(table)
    atomic.write_json(out / "table.json", data)
    atomic.write_text(out / "table.md", text)
    if results is not None:
        write_results(RESULTS_NAME, text, data, folder=results)
    return table


def _pct(x: float) -> str:
    return f"{x * 100:.2f}"


def render(table: list[dict]) -> str:
    """The table with the settings it was measured under, so the results file stands alone."""
    body = markdown.table(
        ["method", "recipe", "student dev acc % (mean ± std)", "retention %", "per seed",
         "seeds", "steps", "train examples", "train minutes", "train samples/s"],
        [
            [r["method"], r["recipe"],
             _pct(r["dev_accuracy_mean"])
             + ("" if r["dev_accuracy_std"] is None else f" ± {_pct(r['dev_accuracy_std'])}"),
             _pct(r["dev_accuracy_mean"] / r["teacher_dev_accuracy"]),
             ", ".join(_pct(a) for a in r["dev_accuracy_per_seed"]),
             ", ".join(map(str, r["seeds"])), r["steps"], r["train_examples"],
             f"{r['train_minutes_mean']:.1f}", f"{r['train_samples_per_s_mean']:.1f}"]
            for r in table
        ],
    )  # fmt: skip
    lines = [
        f"{SHARED['student.layers']}-layer students cut from one teacher, {STEPS} optimizer "
        "steps each unless the steps column says otherwise (a multi-stage recipe splits them "
        "evenly over its stages), lr "
        f"{SHARED['train.lr']:g}, at most {SHARED['data.max_train_examples']:,} training "
        "examples of the teacher's task; std is over seeds.",
        "",
        body.rstrip("\n"),
    ]
    if table:
        lines += ["", f"Teacher dev accuracy: {_pct(table[0]['teacher_dev_accuracy'])}%."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("teacher", help="fine-tuned teacher (run folder or model folder)")
    parser.add_argument("out", type=Path, help="output folder of the comparison")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    args = parser.parse_args()
    for seed in args.seeds:
        for key in args.methods:
            run_one(args.teacher, key, seed, args.out)
            write_table(args.out, collect(args.out))
    write_table(args.out, collect(args.out), results=RESULTS)
    print((args.out / "table.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
