"""Retention on a second task: the training `compress` did before the retention regime against
the regime (its default now), on a teacher fine-tuned on another sentiment task, beside the
same two rows of `make bench-distill` on SST-2.

`make bench-tasks` pools the three domains of `sentiment3` (product, movie and restaurant
review sentences, 1,000 each, balanced) into one task: its file lies in the output folder and
the loader holds out a seeded 20 % as dev (600 sentences; SST-2's dev set is 872).
all-MiniLM-L6-v2 is fine-tuned on the other 2,400 with the demo's fine-tuning settings for
3 epochs (one epoch of 2,400 is 75 steps), then each method distils a 3-layer student per
seed:
- `before`: one epoch, every weight trained, batches in random order (bench-distill's (c));
- `regime`: `compress`'s defaults, three epochs with the word embeddings fixed and batches
  grouped by length (bench-distill's (f')).
Both at lr 2e-4, as on SST-2. Finished runs are reused. Writes `table.md` / `table.json` in
the output folder and `benchmarks/results/bench-tasks.md` / `.json`; the SST-2 rows are read
from `benchmarks/results/bench-distill.json`.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from pathlib import Path
from typing import Any

from benchmarks.experiments.distill_compare import row_of
from benchmarks.experiments.results import RESULTS, write_results
from compressor import atomic, markdown
from compressor.data import read_rows
from compressor.pipeline import compress, finetune
from compressor.recipe import default_teacher_backbone, load_recipe
from compressor.runfolder import RunFolder

RESULTS_NAME = "bench-tasks"
DOMAINS = ("amazon", "imdb", "yelp")
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"  # beside the repo
DEV_FRACTION = 0.2
TEACHER = {"finetune.lr": 1e-4, "finetune.epochs": 3, "finetune.eval_every": 25,
           "finetune.checkpoint_every": 1000}  # fmt: skip
SHARED = {"student.layers": 3, "train.lr": 2e-4, "train.eval_every": 25,
          "train.checkpoint_every": 1000, "quantize.mode": "none"}  # fmt: skip
# method -> (label, overrides, bench-distill's method of the same training)
METHODS: dict[str, tuple[str, dict[str, Any], str]] = {
    "before": ("before the regime: 1 epoch, every weight trained, random batches",
               {"train.epochs": 1, "train.group_by_length": False,
                "student.freeze_word_embeddings": False}, "kd_hidden"),
    "regime": ("the regime (compress's default): 3 epochs, word embeddings fixed, batches "
               "grouped by length", {}, "retention_demo"),
}  # fmt: skip


def pool(sentiment3: Path, out: Path) -> Path:
    """The three domains in one file, shuffled with seed 42 (the loader's hold-out is seeded
    too, so every run sees the same split)."""
    path = out / "data" / "sentiment3.tsv"
    if path.is_file():
        return path
    rows = [row for d in DOMAINS for row in read_rows(sentiment3 / f"{d}.tsv")]
    random.Random(42).shuffle(rows)
    lines = ["sentence\tlabel", *(f"{r['sentence']}\t{r['label']}" for r in rows)]
    atomic.write_text(path, "\n".join(lines) + "\n")
    return path


def data_overrides(source: Path, max_train: int | None, max_dev: int | None) -> dict[str, Any]:
    return {"data.source": str(source), "data.dev_fraction": DEV_FRACTION,
            "data.max_train_examples": max_train, "data.max_dev_examples": max_dev}  # fmt: skip


def teacher(backbone: str, data: dict[str, Any], out: Path) -> Path:
    """The fine-tuned teacher's folder, trained once."""
    run = out / "teacher"
    started = (run / "state.json").is_file()
    if started and RunFolder.open(run).done("train"):
        return run / "model"
    recipe = load_recipe(None, {**data, **TEACHER})
    return finetune(backbone, recipe, run, overwrite=False, resume=started)


def run_one(teacher_dir: Path, data: dict[str, Any], key: str, seed: int, out: Path) -> dict:
    run_dir = out / key / f"seed-{seed}"
    started = (run_dir / "state.json").is_file()
    if not started or not RunFolder.open(run_dir).done("evaluate"):
        recipe = load_recipe(None, {**data, **SHARED, **METHODS[key][1], "train.seed": seed})
        compress(str(teacher_dir), recipe, run_dir, overwrite=False, resume=started,
                 skip_benchmark=True, skip_export=True)  # fmt: skip
    return row_of(key, seed, RunFolder.open(run_dir))


def summarise(task: str, runs: list[dict], methods: dict[str, str]) -> list[dict]:
    """Per method: mean and sample std over seeds and the retention of the mean. `methods`
    maps this table's method to the runs' own name for it."""
    rows = []
    for key, (label, _, _) in METHODS.items():
        mine = [r for r in runs if r["method"] == methods[key]]
        if not mine:
            continue
        accs = [r["dev_accuracy"] for r in mine]
        teacher_acc = mine[0]["teacher_dev_accuracy"]
        rows.append({
            "task": task, "method": key, "label": label, "seeds": [r["seed"] for r in mine],
            "teacher_dev_accuracy": teacher_acc, "dev_accuracy_per_seed": accs,
            "dev_accuracy_mean": statistics.fmean(accs),
            "dev_accuracy_std": statistics.stdev(accs) if len(accs) > 1 else None,
            "retention": statistics.fmean(accs) / teacher_acc,
            "train_minutes": statistics.fmean(r["train_seconds"] for r in mine) / 60,
            "train_examples": mine[0]["train_examples"],
        })  # fmt: skip
    return rows


def sst2_rows(results: Path) -> list[dict]:
    """The same two trainings on SST-2, from bench-distill's committed runs."""
    path = results / "bench-distill.json"
    if not path.is_file():
        return []
    runs = json.loads(path.read_text(encoding="utf-8"))["data"]["runs"]
    return summarise("SST-2 (bench-distill)", runs, {k: v[2] for k, v in METHODS.items()})


def _pct(x: float) -> str:
    return f"{x * 100:.2f}"


def render(rows: list[dict]) -> str:
    body = markdown.table(
        ["task", "training", "teacher dev acc %", "student dev acc % (mean ± std)",
         "retention %", "per seed", "train examples", "train minutes"],
        [[r["task"], r["label"], _pct(r["teacher_dev_accuracy"]),
          _pct(r["dev_accuracy_mean"])
          + ("" if r["dev_accuracy_std"] is None else f" ± {_pct(r['dev_accuracy_std'])}"),
          _pct(r["retention"]), ", ".join(_pct(a) for a in r["dev_accuracy_per_seed"]),
          r["train_examples"], f"{r['train_minutes']:.1f}"] for r in rows],
    )  # fmt: skip
    return (
        "3-layer students cut from each task's fine-tuned all-MiniLM-L6-v2 teacher, lr 2e-4; "
        "retention is the mean student accuracy over the teacher's; std is over seeds. "
        f"sentiment3: the three domains pooled, {DEV_FRACTION:.0%} held out as dev (seed 42); "
        "SST-2: the 872 dev sentences, at most 12,800 training sentences.\n\n" + body
    )


def write_table(out: Path, runs: list[dict], results: Path, *, publish: bool) -> list[dict]:
    rows = summarise("sentiment3 (pooled)", runs, {k: k for k in METHODS}) + sst2_rows(results)
    text = render(rows)
    atomic.write_json(out / "table.json", {"runs": runs, "rows": rows})
    atomic.write_text(out / "table.md", text)
    if publish:
        write_results(RESULTS_NAME, text, {"runs": runs, "rows": rows}, folder=results)
    return rows


def main(argv: list[str] | None = None, results: Path = RESULTS) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="output folder of the comparison")
    parser.add_argument("--backbone", help="teacher backbone (default: all-MiniLM-L6-v2)")
    parser.add_argument("--sentiment3", type=Path, default=SHARED_DATA / "sentiment3")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--max-train", type=int, help="fewer training sentences (tests)")
    parser.add_argument("--max-dev", type=int, help="fewer dev sentences (tests)")
    args = parser.parse_args(argv)
    data = data_overrides(pool(args.sentiment3, args.out), args.max_train, args.max_dev)
    teacher_dir = teacher(args.backbone or default_teacher_backbone(), data, args.out)
    runs: list[dict] = []
    for seed in args.seeds:
        for key in METHODS:
            runs.append(run_one(teacher_dir, data, key, seed, args.out))
            write_table(args.out, runs, results, publish=False)
    write_table(args.out, runs, results, publish=True)
    print((args.out / "table.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
