"""Student kinds side by side on one teacher: the 3-layer transformer of the demo recipe,
Tang et al.'s BiLSTM (`recipes/bilstm.yaml`) and AdaBERT's searched CNN
(`recipes/adabert.yaml`), each over several seeds.

`make bench-students` runs this on the demo teacher (all-MiniLM-L6-v2 fine-tuned on SST-2).
Every (kind, seed) is a resumable run folder under OUT that trains, exports, quantizes
(dynamic int8) and scores every file on dev; the BiLSTM and the CNN read the same
teacher-labelled augmented transfer set (cached, with the teacher's logits, so the second
seed pays for neither). Then the teacher's ONNX file, its own dynamic int8 file (what a
user gets without us) and every student file are timed in one interleaved run at batch 1
and 32, at seq 128 and at the dev sentences' own lengths. Transformer and BiLSTM students
have one architecture whatever the seed, so their first seed's files are timed; every
distinct architecture the AdaBERT search chose is timed. Writes `table.md` / `table.json`
into OUT and into benchmarks/results/bench-students.md / .json.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from benchmarks.experiments.results import write_results
from benchmarks.experiments.timing import cached_timing
from benchmarks.report import EN_DASH, TIMES
from compressor import atomic, markdown
from compressor.layout import graphs_dir
from compressor.pipeline import compress
from compressor.recipe import Recipe, load_recipe
from compressor.runfolder import RunFolder

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
RESULTS_NAME = "bench-students"
KINDS = {"transformer": "demo.yaml", "bilstm": "bilstm.yaml", "cnn": "adabert.yaml"}
LABELS = {
    "transformer": "3-layer transformer (demo recipe)",
    "bilstm": "BiLSTM (Tang et al.)",
    "cnn": "AdaBERT CNN (searched)",
}
FILES = {"fp32": ("model.onnx", "student_onnx"), "int8": ("model_int8.onnx", "student_int8")}
SHAPES = [(1, 128), (1, "dev"), (32, 128), (32, "dev")]
BAR = {"speedup": 10.0, "drop_points": 2.0}


def recipe_for(kind: str, seed: int, args: argparse.Namespace) -> Recipe:
    overrides: dict[str, Any] = {
        "data.max_train_examples": args.train_examples,
        "quantize.mode": "dynamic-int8",
        "train.seed": seed,
    }
    if kind != "transformer":
        overrides |= {"augment.per_example": args.per_example, "train.epochs": args.epochs}
    if kind == "cnn":
        overrides |= {"adabert.seed": seed, "adabert.beta": args.beta}
    return load_recipe(RECIPES / KINDS[kind], overrides)


def folder(out: Path, kind: str, seed: int) -> Path:
    return out / f"{kind}-s{seed}"


def run_all(teacher: str, out: Path, args: argparse.Namespace) -> None:
    """Train, export, quantize and evaluate every run not yet evaluated, seed by seed, so
    that an interrupted benchmark has whole seeds done."""
    for seed in args.seeds:
        for kind in args.kinds:
            path = folder(out, kind, seed)
            started = (path / "state.json").is_file()
            if started and RunFolder.open(path).done("evaluate"):
                continue
            compress(teacher, recipe_for(kind, seed, args), path, overwrite=False,
                     resume=started, skip_benchmark=True)  # fmt: skip


def timed_runs(out: Path, args: argparse.Namespace) -> dict[str, Path]:
    """Label -> run folder of every architecture to time: a kind's first seed, and each CNN
    seed whose searched cells differ from those already listed."""
    chosen: dict[str, Path] = {}
    seen: list[Any] = []
    for kind in args.kinds:
        for seed in args.seeds:
            path = folder(out, kind, seed)
            cells = json.loads((path / "model" / "config.json").read_text()).get("cells")
            if seed != args.seeds[0] and (kind != "cnn" or cells in seen):
                continue
            seen.append(cells)
            chosen[kind if seed == args.seeds[0] else f"{kind}-s{seed}"] = path
    return chosen


def latency(out: Path, args: argparse.Namespace) -> dict:
    """The teacher's two files and every timed student's two files in one interleaved run;
    kept in OUT/latency.json and reused while the set of files is the same."""
    from benchmarks.latency import Variant
    from compressor.data import load_task_data
    from compressor.pipeline.benchmark import dev_lengths

    first = folder(out, args.kinds[0], args.seeds[0])
    teacher = graphs_dir(first / "teacher_onnx")
    variants = [
        Variant("teacher", teacher / "model.onnx", "onnxruntime"),
        Variant("teacher int8", teacher / "model_int8.onnx", "onnxruntime"),
    ]
    for label, path in timed_runs(out, args).items():
        for file, (name, _key) in FILES.items():
            graph = graphs_dir(path / "onnx") / name
            variants.append(Variant(f"{label} {file}", graph, "onnxruntime"))
    recipe = recipe_for(args.kinds[0], args.seeds[0], args)
    return cached_timing(
        out / "latency.json",
        variants,
        lengths=lambda: dev_lengths(
            first / "model", load_task_data(recipe.data), recipe.data.max_length
        ),
        batches=(1, 32),
        seq_lens=(128, "dev"),
        threads=args.threads,
        iters=args.iters,
    )


def _mean_std(values: list[float]) -> dict[str, float | int]:
    return {"mean": statistics.fmean(values), "n": len(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0}  # fmt: skip


def rows(out: Path, args: argparse.Namespace, timing: dict) -> dict[str, Any]:
    """One row per (architecture, file): dev accuracy over the seeds that share it, drop from
    the teacher, size, and speed-ups over both teacher files at every shape."""
    first = RunFolder.open(folder(out, args.kinds[0], args.seeds[0]))
    teacher_acc = first.result("evaluate")["dev_accuracy"]
    ratio = {(s["baseline"], s["candidate"], s["batch"], str(s["seq_len"])): s
             for s in timing["speedups"]}  # fmt: skip
    timed = timed_runs(out, args)
    table = []
    for label, path in timed.items():
        kind = label.split("-s")[0]
        seeds = args.seeds if label == kind else [int(label.split("-s")[1])]
        if kind == "cnn" and label == kind:  # the first architecture: the seeds that chose it
            cells = json.loads((path / "model" / "config.json").read_text())["cells"]
            seeds = [
                s
                for s in args.seeds
                if json.loads((folder(out, kind, s) / "model" / "config.json").read_text())["cells"]
                == cells
            ]
        runs = [RunFolder.open(folder(out, kind, s)) for s in seeds]
        distill = runs[0].result("distill")
        for file, (name, key) in FILES.items():
            accs = [r.result("evaluate")["dev_accuracy"][key] for r in runs]
            speed = {
                f"{base} b{b} s{s}": ratio.get((base, f"{label} {file}", b, str(s)))
                for base in ("teacher", "teacher int8") for b, s in SHAPES
            }  # fmt: skip
            table.append({
                "label": label, "kind": kind, "file": file, "seeds": seeds,
                "dev_accuracy": _mean_std(accs), "accuracies": accs,
                "drop_points": (teacher_acc["teacher"] - statistics.fmean(accs)) * 100,
                "non_embedding_parameters": distill["student_non_embedding_parameters"],
                "parameters": distill["student_parameters"],
                "file_mb": round((graphs_dir(path / "onnx") / name).stat().st_size / 2**20, 3),
                "speedups": speed,
                "train_seconds": _mean_std([r.result("distill")["train_seconds"] for r in runs]),
                "train_samples_per_s": _mean_std(
                    [r.result("distill")["train_samples_per_s"] for r in runs]),
                "train_examples": distill["train_examples"],
            })  # fmt: skip
    searches = [
        {"seed": s, **{k: RunFolder.open(folder(out, "cnn", s)).result("adabert")[k]
                       for k in ("cells", "depth", "cost", "seconds", "probe_accuracies")}}
        for s in args.seeds if "cnn" in args.kinds
    ]  # fmt: skip
    return {
        "teacher": teacher_acc,
        "rows": table,
        "searches": searches,
        "teacher_non_embedding_parameters": distill["teacher_non_embedding_parameters"],
    }


def _ratio(s: dict | None) -> str:
    if s is None:
        return markdown.DASH
    return f"{s['ratio']:.2f}{TIMES} ({s['ratio_min']:.2f}{EN_DASH}{s['ratio_max']:.2f})"


def _acc(stat: dict) -> str:
    return f"{stat['mean'] * 100:.2f} ± {stat['std'] * 100:.2f} (n={stat['n']})"


def bar_verdict(data: dict) -> str:
    """Whether a non-transformer file is >= 10x the teacher's ONNX file at batch 1, dev
    lengths, within 2 points of the teacher."""
    hits = [
        r for r in data["rows"]
        if r["kind"] != "transformer"
        and (s := r["speedups"]["teacher b1 sdev"]) is not None
        and s["ratio"] >= BAR["speedup"] and r["drop_points"] <= BAR["drop_points"]
    ]  # fmt: skip
    if hits:
        names = ", ".join(f"{r['label']} {r['file']}" for r in hits)
        return (
            "**Bar reached** (>= 10x the teacher's ONNX file at batch 1, dev lengths, within "
            f"2 points): {names}."
        )
    return ("**Bar not reached**: no BiLSTM or CNN file is both >= 10x the teacher's ONNX file "
            "at batch 1, dev lengths, and within 2 points of the teacher.")  # fmt: skip


def render(data: dict, timing: dict, args: argparse.Namespace) -> str:
    teacher = data["teacher"]
    head = ["student", "file", "dev acc % (mean ± std)", "drop (pts)", "non-emb params (M)",
            "file MB", *(f"vs teacher b{b} s{s}" for b, s in SHAPES),
            *(f"vs teacher int8 b{b} s{s}" for b, s in SHAPES)]  # fmt: skip
    body = [
        [LABELS.get(r["label"], r["label"]), r["file"], _acc(r["dev_accuracy"]),
         f"{r['drop_points']:.2f}", f"{r['non_embedding_parameters'] / 1e6:.3f}",
         f"{r['file_mb']:.2f}",
         *(_ratio(r["speedups"][f"{base} b{b} s{s}"])
           for base in ("teacher", "teacher int8") for b, s in SHAPES)]
        for r in data["rows"]
    ]  # fmt: skip
    cost = [
        [LABELS.get(r["label"], r["label"]), f"{r['train_examples']:,}",
         f"{r['train_seconds']['mean'] / 60:.1f}", f"{r['train_samples_per_s']['mean']:.0f}"]
        for r in data["rows"] if r["file"] == "fp32"
    ]  # fmt: skip
    searches = [
        [s["seed"], s["depth"], "; ".join(f"{op} {a}->{b}" for op, a, b in s["cells"][0]),
         f"{s['cost']:.2f}", f"{s['seconds'] / 60:.1f}"]
        for s in data["searches"]
    ]  # fmt: skip
    lines = [
        f"Teacher: dev accuracy {teacher['teacher'] * 100:.2f} % (its own dynamic int8 file "
        f"{teacher['teacher_int8'] * 100:.2f} %), "
        f"{data['teacher_non_embedding_parameters'] / 1e6:.2f} M non-embedding parameters. "
        f"Seeds {', '.join(map(str, args.seeds))}; at most {args.train_examples:,} training "
        f"sentences; BiLSTM and CNN: {args.per_example} augmented copies per sentence "
        f"labelled by the teacher, {args.epochs:g} epoch(s), teacher logits cached; AdaBERT's "
        f"efficiency weight beta {args.beta:g}; the "
        "transformer: the demo recipe as it is (no augmentation). ONNX Runtime CPU, "
        f"{timing['threads']} threads; speed-up = baseline p50 / student p50, median of 3 "
        f"paired rounds (min{EN_DASH}max); dev accuracy of each file as the evaluate stage "
        "scores it.",
        "",
        bar_verdict(data),
        "",
        markdown.table(head, body).rstrip("\n"),
        "",
        "Training cost (mean over seeds, this machine):",
        "",
        markdown.table(["student", "train examples", "minutes", "samples/s"], cost).rstrip("\n"),
    ]
    if searches:
        lines += ["", "AdaBERT search per seed (cost in width-7 convolutions):", "",
                  markdown.table(["seed", "cells", "cell", "cost", "minutes"],
                                 searches).rstrip("\n")]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("teacher", help="fine-tuned teacher (a finetune run or model folder)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--kinds", nargs="+", choices=list(KINDS), default=list(KINDS))
    parser.add_argument("--train-examples", type=int, default=12800)
    parser.add_argument("--per-example", type=int, default=10,
                        help="augmented copies per training sentence (BiLSTM, CNN)")  # fmt: skip
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--beta", type=float, default=0.5, help="AdaBERT's efficiency weight")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument(
        "--train-only", action="store_true", help="train and evaluate the runs, then stop"
    )
    args = parser.parse_args()
    run_all(args.teacher, args.out, args)
    if args.train_only:
        return
    timing = latency(args.out, args)
    data = rows(args.out, args, timing)
    text = render(data, timing, args)
    atomic.write_json(args.out / "table.json", data)
    atomic.write_text(args.out / "table.md", text)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    write_results(RESULTS_NAME, text, {"args": settings, **data})
    print(text)


if __name__ == "__main__":
    main()
