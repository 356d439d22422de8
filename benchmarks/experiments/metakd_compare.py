"""Meta-KD against single-domain teachers and plain KD, per domain, at full and few-shot data.

`make bench-metakd` runs this on ../shared/data/sentiment3 (amazon / imdb / yelp, each split
80/20 by a shuffle seeded with (42, domain name): 800 train / 200 dev) with all-MiniLM-L6-v2
as the backbone. For every target domain and target fraction (1.0 and 0.1 of its 800
training examples) it measures dev accuracy on the target's 200 dev examples of

    (a) a teacher fine-tuned on that domain alone,
    (b) the meta-teacher, trained on all domains (the target at its fraction),
    (c) a student distilled from (a) by plain KD (recipes/kd.yaml),
    (d) the Meta-KD student distilled from (b) (recipes/metakd.yaml).

Same budget for like with like: both teachers train TEACHER_STEPS optimizer steps and are
kept at their last step; both students have STUDENT_LAYERS layers cut from their teacher,
train STUDENT_STEPS steps of batch 32 and are kept at their best dev step (as `compress`
does). Defaults fit 2 CPU cores (a few minutes per run). Each run is its own folder under
the output, so an interrupted comparison continues where it stopped. Writes `table.json` and
`table.md` in the output after every target and, once all are in,
benchmarks/results/bench-metakd.md and .json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.experiments.results import RESULTS, write_results
from compressor import atomic, markdown
from compressor.metakd.data import DomainData
from compressor.metakd.run import load_metakd_data, metakd
from compressor.pipeline import compress, finetune
from compressor.recipe import default_teacher_backbone, load_recipe
from compressor.runfolder import RunFolder

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "sentiment3"
TEACHER_STEPS = 150
STUDENT_STEPS = 200
STUDENT_LAYERS = 3
RESULTS_NAME = "bench-metakd"
SHARED = {
    "data.max_train_examples": 12800,
    "data.max_length": 64,
    "finetune.max_steps": TEACHER_STEPS,
    "finetune.keep": "last",
    "finetune.eval_every": 50,
    "finetune.checkpoint_every": 50,
    "train.max_steps": STUDENT_STEPS,
    "train.eval_every": 50,
    "train.checkpoint_every": 50,
    "student.layers": STUDENT_LAYERS,
    "quantize.mode": "none",
}
COLUMNS = {
    "a": "(a) single-domain teacher",
    "b": "(b) meta-teacher",
    "c": "(c) KD student of (a)",
    "d": "(d) Meta-KD student",
}


def _fresh(run_dir: Path) -> bool:
    return not (run_dir / "state.json").is_file()


def write_domain_split(data: DomainData, target: int, folder: Path) -> Path:
    """The target's (few-shot) train and dev parts as train.tsv / dev.tsv, exactly those of
    the Meta-KD run, for `finetune` and `compress`."""
    domain = data.domains[target]
    for part in ("train", "dev"):
        split = getattr(domain, part)
        rows = [f"{t}\t{data.label_names[y]}" for t, y in zip(split.texts, split.labels,
                                                              strict=True)]  # fmt: skip
        atomic.write_text(folder / f"{part}.tsv", "\n".join(["sentence\tlabel", *rows]) + "\n")
    return folder


def run_target(backbone: str, data_dir: Path, domain: str, fraction: float, out: Path) -> dict:
    """The four figures of one (domain, fraction); finished runs are reused."""
    root = out / f"{domain}-{fraction:g}"
    meta_recipe = load_recipe(
        RECIPES / "metakd.yaml",
        {**SHARED, "data.source": str(data_dir), "metakd.target_domain": domain,
         "metakd.fraction": fraction},
    )  # fmt: skip
    data, target = load_metakd_data(meta_recipe)
    split_dir = write_domain_split(data, target, root / "split")
    single = load_recipe(RECIPES / "kd.yaml", {**SHARED, "data.source": str(split_dir)})

    teacher_dir = root / "teacher"
    finetune(backbone, single, teacher_dir, overwrite=False, resume=not _fresh(teacher_dir))
    kd_dir = root / "kd-student"
    if _fresh(kd_dir) or not RunFolder.open(kd_dir).done("evaluate"):
        compress(str(teacher_dir), single, kd_dir, overwrite=False, resume=not _fresh(kd_dir),
                 skip_benchmark=True, skip_export=True)  # fmt: skip
    meta_dir = root / "metakd"
    if _fresh(meta_dir) or not RunFolder.open(meta_dir).done("student"):
        metakd(backbone, meta_recipe, meta_dir, overwrite=False, resume=not _fresh(meta_dir))

    meta = RunFolder.open(meta_dir)
    return {
        "domain": domain,
        "fraction": fraction,
        "data": Path(data_dir).name,
        "split_seed": meta_recipe.data.seed,
        "seed": meta_recipe.train.seed,
        "backbone": backbone,
        "train_examples": len(data.domains[target].train),
        "dev_examples": len(data.domains[target].dev),
        "a": RunFolder.open(teacher_dir).result("train")["dev_accuracy"],
        "b": meta.result("teacher")["dev_accuracy"][domain],
        "c": RunFolder.open(kd_dir).result("evaluate")["dev_accuracy"]["student"],
        "d": meta.result("student")["dev_accuracy"],
    }


def write_table(out: Path, rows: list[dict], *, results: Path | None = None) -> None:
    """The rows so far into the run folder and, once every target is in (`results` set), into
    the committed results file: the same text in both."""
    data = {"rows": rows, "settings": SHARED}
    text = render(rows)
    atomic.write_json(out / "table.json", data)
    atomic.write_text(out / "table.md", text)
    if results is not None:
        write_results(RESULTS_NAME, text, data, folder=results)


def render(rows: list[dict]) -> str:
    """The table with the data, split, seeds and budgets behind it, so that the results file
    stands alone."""
    body = markdown.table(
        ["domain", "target data", *COLUMNS.values()],
        [
            [r["domain"], f"{r['fraction']:.0%} ({r['train_examples']})",
             *(f"{r[k] * 100:.2f}" for k in COLUMNS)]
            for r in rows
        ],
    )  # fmt: skip
    note = (
        f"Dev accuracy (%) on each domain's {rows[0]['dev_examples'] if rows else 200} "
        f"held-out examples. Teachers: {TEACHER_STEPS} steps; students: {STUDENT_LAYERS} "
        f"layers, {STUDENT_STEPS} steps."
    )
    if rows:
        r = rows[0]
        note += (
            f" Data: {r['data']}, each domain split into train / dev by a shuffle seeded with "
            f"({r['split_seed']}, domain name); backbone {r['backbone']}; training seed "
            f"{r['seed']}, max length {SHARED['data.max_length']}."
        )
    return f"{body}\n{note}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="output folder of the comparison")
    parser.add_argument("--data", type=Path, default=DATA, help="one file per domain")
    parser.add_argument("--model", default=None, help="backbone [default: all-MiniLM-L6-v2]")
    parser.add_argument("--domains", nargs="+", default=["amazon", "imdb", "yelp"])
    parser.add_argument("--fractions", type=float, nargs="+", default=[1.0, 0.1])
    args = parser.parse_args()
    backbone = args.model or default_teacher_backbone()
    rows = []
    for fraction in args.fractions:
        for domain in args.domains:
            rows.append(run_target(backbone, args.data, domain, fraction, args.out))
            write_table(args.out, rows)
    write_table(args.out, rows, results=RESULTS)
    print((args.out / "table.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
