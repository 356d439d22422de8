"""Named-entity recognition on CoNLL-2003 (`make bench-ner`): a token-classification teacher
and its 3-layer students, by entity F1, size and speed against the teacher's files.

The teacher is all-MiniLM-L6-v2 fine-tuned on the whole training split (14,041 sentences)
with `recipes/ner.yaml` (3 epochs at lr 1e-4, batches grouped by length). Each method then
distils a student from it, per seed:
- `kd`: a 3-layer student cut from the teacher, Hinton KD as `compress` trained before the
  retention regime: one epoch, every weight trained, batches in random order (lr 2e-4);
- `regime`: the same student under `compress`'s defaults, three epochs with the word
  embeddings fixed and batches grouped by length;
- `long`: the regime for LONG_EPOCHS epochs (TextBrewer distils for 30-60);
- `augmented`: the regime over the training set grown by Dai & Adel's tag-preserving
  augmentation, AUG_COPIES copies a sentence (cycling token replacement, mention
  replacement, shuffling within segments; a copy equal to its sentence is dropped), for
  LONG_EPOCHS / (1 + AUG_COPIES) epochs: at most the updates of `long` (the steps column
  says how many), new sentences against more passes over the same ones;
- `homodistil`: HomoDistil (`recipes/homodistil.yaml`) from the teacher itself to about 1/4
  of its non-embedding weights (hidden 2/3, half the heads, a third of the FFN: MiniLM-L6's
  256 / 6 / 512, as `make bench-prune`'s quarter size), 3 epochs;
- `bilstm`: Tang's one-layer BiLSTM as a tagger (`recipes/ner_bilstm.yaml`), the anchor of
  TextBrewer's BiGRU row.
The first seed of each method is also exported and quantized (dynamic int8), every file is
scored on the 3,250 dev sentences, and the ONNX files are timed in one interleaved run (3
rounds) at batch 1 and 32 over the dev sentences' own lengths, as soon as the first seed's
runs are done. Finished runs and the timing are reused, and the table is rewritten after
each run, so a cut bench resumes where it stopped. Writes `table.md` / `table.json` in the
output folder and `benchmarks/results/bench-ner.md` / `.json`.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.experiments.results import RESULTS, write_results
from benchmarks.experiments.timing import cached_timing
from benchmarks.latency import Variant
from compressor import atomic, markdown
from compressor.data import load_task_data
from compressor.layout import graphs_dir
from compressor.pipeline import compress, finetune
from compressor.pipeline.benchmark import dev_lengths
from compressor.recipe import default_teacher_backbone, load_recipe
from compressor.runfolder import RunFolder

RESULTS_NAME = "bench-ner"
RECIPES = Path(__file__).resolve().parents[2] / "recipes"
RECIPE, BILSTM_RECIPE = RECIPES / "ner.yaml", RECIPES / "ner_bilstm.yaml"
HOMODISTIL_RECIPE = RECIPES / "homodistil.yaml"
SHARED: dict[str, Any] = {"export.e2e": False}
THREE = {"student.layers": 3}
LONG_EPOCHS = 12
AUG_COPIES = 3
AUG = {"augment.enabled": True, "augment.methods": ["token", "mention", "shuffle"],
       "augment.per_example": AUG_COPIES, "train.epochs": LONG_EPOCHS / (1 + AUG_COPIES),
       "distill.teacher_states_mb": 4096}  # fmt: skip
PRUNE_TRAIN = {"prune.train.epochs": 3, "prune.train.eval_every": 220,
               "prune.train.checkpoint_every": 220}  # fmt: skip


def quarter(teacher_dir: Path) -> dict[str, Any]:
    """HomoDistil's targets for about 1/4 of the teacher's non-embedding weights, from its
    config (MiniLM-L6: hidden 256, 6 heads, FFN 512, 26 %)."""
    config = json.loads((teacher_dir / "config.json").read_text(encoding="utf-8"))
    return {**PRUNE_TRAIN, "prune.hidden": round(config["hidden_size"] * 2 / 3 / 8) * 8,
            "prune.heads": config["num_attention_heads"] // 2,
            "prune.ffn": config["intermediate_size"] // 3}  # fmt: skip


Overrides = dict[str, Any] | Callable[[Path], dict[str, Any]]
METHODS: dict[str, tuple[str, Path, Overrides]] = {
    "kd": ("3 layers, KD, 1 epoch, every weight trained, random batches", RECIPE,
           {**THREE, "train.epochs": 1, "train.group_by_length": False,
            "student.freeze_word_embeddings": False}),
    "regime": ("3 layers, KD under the regime (compress's default): 3 epochs, word embeddings "
               "fixed, batches grouped by length", RECIPE, THREE),
    "long": (f"3 layers, the regime for {LONG_EPOCHS} epochs", RECIPE,
             {**THREE, "train.epochs": LONG_EPOCHS}),
    "augmented": (f"3 layers, the regime over the sentences and up to {AUG_COPIES} copies each "
                  f"(Dai & Adel's augmentation), {LONG_EPOCHS / (1 + AUG_COPIES):g} epochs",
                  RECIPE, {**THREE, **AUG}),
    "homodistil": ("1/4-size HomoDistil: the teacher pruned while distilling to hidden 2/3, "
                   "half the heads, 1/3 of the FFN, 3 epochs", HOMODISTIL_RECIPE, quarter),
    "bilstm": ("BiLSTM tagger (Tang et al.; recipes/ner_bilstm.yaml): 300 units a direction, "
               "10 epochs of gold-tag CE + logits MSE", BILSTM_RECIPE, {}),
}  # fmt: skip
FILES = {"fp32": ("model.onnx", "student_onnx"), "int8": ("model_int8.onnx", "student_int8")}


def recipe_for(data: dict[str, Any], overrides: dict[str, Any], recipe: Path = RECIPE) -> Any:
    return load_recipe(recipe, {**data, **overrides})


def teacher(backbone: str, data: dict[str, Any], out: Path) -> Path:
    """The fine-tuned teacher's folder, trained once."""
    run = out / "teacher"
    started = (run / "state.json").is_file()
    if started and RunFolder.open(run).done("train"):
        return run / "model"
    return finetune(backbone, recipe_for(data, {}), run, overwrite=False, resume=started)


def run_one(teacher_dir: Path, data: dict[str, Any], key: str, seed: int, shipped: bool,
            out: Path) -> dict:  # fmt: skip
    """One student; `shipped` ones are exported and quantized too."""
    run_dir = out / key / f"seed-{seed}"
    started = (run_dir / "state.json").is_file()
    if not started or not RunFolder.open(run_dir).done("evaluate"):
        _label, recipe, changes = METHODS[key]
        if callable(changes):
            changes = changes(teacher_dir)
        overrides = {**SHARED, **changes, "train.seed": seed}
        if not shipped:
            overrides["quantize.mode"] = "none"
        compress(str(teacher_dir), recipe_for(data, overrides, recipe), run_dir, overwrite=False,
                 resume=started, skip_benchmark=True, skip_export=not shipped)  # fmt: skip
    run = RunFolder.open(run_dir)
    # HomoDistil prunes instead of distilling a cut student: its training is the prune stage
    distill = run.result("distill") or run.result("prune")
    evaluate = run.result("evaluate")
    return {
        "method": key,
        "seed": seed,
        "dev_f1": evaluate["dev_accuracy"]["student"],
        "teacher_dev_f1": evaluate["dev_accuracy"]["teacher"],
        "files": evaluate["dev_accuracy"] if shipped else {},
        "figures": evaluate.get("dev_figures", {}),
        "steps": distill["steps"],
        "train_examples": distill["train_examples"],
        "train_seconds": distill["train_seconds"],
        "train_samples_per_s": distill["train_samples_per_s"],
        "non_embedding": {"teacher": distill["teacher_non_embedding_parameters"],
                          "student": distill["student_non_embedding_parameters"]},
    }  # fmt: skip


def timing(out: Path, teacher_dir: Path, data: dict[str, Any], seed: int, iters: int) -> dict:
    """The teacher's two files and each shipped student's, timed in one interleaved run."""
    first = out / next(iter(METHODS)) / f"seed-{seed}"
    teacher_graphs = graphs_dir(first / "teacher_onnx")
    variants = [
        Variant("teacher", teacher_graphs / "model.onnx", "onnxruntime"),
        Variant("teacher int8", teacher_graphs / "model_int8.onnx", "onnxruntime"),
    ]
    for key in METHODS:
        for file, (name, _key) in FILES.items():
            graph = graphs_dir(out / key / f"seed-{seed}" / "onnx") / name
            variants.append(Variant(f"{key} {file}", graph, "onnxruntime"))
    cfg = recipe_for(data, SHARED).data
    return cached_timing(
        out / "latency.json",
        variants,
        lengths=lambda: dev_lengths(teacher_dir, load_task_data(cfg), cfg.max_length),
        batches=(1, 32),
        seq_lens=("dev",),
        threads=2,
        iters=iters,
    )


def summarise(runs: list[dict]) -> list[dict]:
    """Per method: mean and sample std of the student's entity F1 over seeds."""
    rows = []
    for key, (label, *_) in METHODS.items():
        mine = [r for r in runs if r["method"] == key]
        if not mine:
            continue
        f1s = [r["dev_f1"] for r in mine]
        teacher_f1 = mine[0]["teacher_dev_f1"]
        rows.append({
            "method": key, "label": label, "seeds": [r["seed"] for r in mine],
            "teacher_dev_f1": teacher_f1, "dev_f1_per_seed": f1s,
            "dev_f1_mean": statistics.fmean(f1s),
            "dev_f1_std": statistics.stdev(f1s) if len(f1s) > 1 else None,
            "retention": statistics.fmean(f1s) / teacher_f1,
            "train_minutes": statistics.fmean(r["train_seconds"] for r in mine) / 60,
            "train_samples_per_s": statistics.fmean(r["train_samples_per_s"] for r in mine),
            "steps": mine[0]["steps"],
        })  # fmt: skip
    return rows


def _speedup(latency: dict, baseline: str, candidate: str, batch: int) -> str:
    for s in latency.get("speedups", []):
        if (s["baseline"], s["candidate"], s["batch"]) == (baseline, candidate, batch):
            return f"{s['ratio']:.2f}x ({s['ratio_min']:.2f}-{s['ratio_max']:.2f})"
    return "-"


def file_rows(runs: list[dict], latency: dict, sizes: dict[str, float]) -> list[list[str]]:
    """The shipped files of the first seed: F1, its drop against the fp32 file, parameters,
    size and the speed-ups over the teacher's two files at batch 1 and 32."""
    shipped = {r["method"]: r for r in runs if r["files"]}
    if not shipped:
        return []
    first = next(iter(shipped.values()))
    teacher_params = first["non_embedding"]["teacher"]
    rows = [
        ["teacher fp32", _pct(first["files"]["teacher"]), "", _m(teacher_params),
         f"{sizes.get('teacher', 0):.1f}", "1.00x", "1.00x", "", ""],
        ["teacher int8", _pct(first["files"]["teacher_int8"]),
         f"{100 * (first['files']['teacher_int8'] - first['files']['teacher']):+.2f}",
         _m(teacher_params), f"{sizes.get('teacher int8', 0):.1f}",
         _speedup(latency, "teacher", "teacher int8", 1),
         _speedup(latency, "teacher", "teacher int8", 32), "1.00x", "1.00x"],
    ]  # fmt: skip
    for key, run in shipped.items():
        for file, (_name, state_key) in FILES.items():
            label = f"{key} {file}"
            drop = run["files"][state_key] - run["files"]["student_onnx"]
            speeds = [_speedup(latency, base, label, batch)
                      for base in ("teacher", "teacher int8") for batch in (1, 32)]  # fmt: skip
            shown_drop = f"{100 * drop:+.2f}" if file != "fp32" else ""
            params, size = _m(run["non_embedding"]["student"]), f"{sizes.get(label, 0):.1f}"
            rows.append([label, _pct(run["files"][state_key]), shown_drop, params, size, *speeds])
    return rows


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _std(std: float | None) -> str:
    return "" if std is None else f" ± {_pct(std)}"


def _m(count: int) -> str:
    return f"{count / 1e6:.2f}"


def render(rows: list[dict], files: list[list[str]], teacher_state: dict) -> str:
    minutes = teacher_state["train_seconds"] / 60
    head = (
        f"CoNLL-2003 dev (3,250 sentences), entity-level micro F1 (seqeval, strict IOB2). "
        f"Teacher: all-MiniLM-L6-v2 fine-tuned for {teacher_state['steps']} steps (3 epochs of "
        f"{teacher_state['train_examples']} sentences, {minutes:.1f} min of optimizer steps "
        f"here), dev F1 {_pct(teacher_state['dev_accuracy'])}. Transformer students: 3 layers "
        "cut from it; std over seeds.\n\n"
    )
    seeds = markdown.table(
        ["training", "teacher F1", "student F1 (mean ± std)", "retention %", "per seed",
         "steps", "train minutes", "samples/s"],
        [[r["label"], _pct(r["teacher_dev_f1"]),
          _pct(r["dev_f1_mean"]) + _std(r["dev_f1_std"]),
          _pct(r["retention"]), ", ".join(_pct(a) for a in r["dev_f1_per_seed"]), r["steps"],
          f"{r['train_minutes']:.1f}", f"{r['train_samples_per_s']:.0f}"] for r in rows],
    )  # fmt: skip
    if not files:
        return head + seeds
    shipped = markdown.table(
        ["file", "dev F1", "Δ vs its fp32 (pts)", "non-embedding params (M)", "size (MB)",
         "vs teacher ONNX, b1", "vs teacher ONNX, b32", "vs teacher int8, b1",
         "vs teacher int8, b32"],
        files,
    )  # fmt: skip
    return (
        head + seeds + "\n\nShipped files of the first seed (int8 scored one sentence at a time, "
        "as served); speed-ups are p50 ratios at the dev sentences' own lengths, 2 threads, "
        "median (min-max) over 3 interleaved rounds.\n\n" + shipped
    )


def write_table(out: Path, runs: list[dict], latency: dict, sizes: dict[str, float],
                *, publish: bool, results: Path) -> None:  # fmt: skip
    teacher_state = RunFolder.open(out / "teacher").result("train")
    rows = summarise(runs)
    files = file_rows(runs, latency, sizes)
    text = render(rows, files, teacher_state)
    payload = {"runs": runs, "rows": rows, "files": files, "latency": latency}
    atomic.write_json(out / "table.json", payload)
    atomic.write_text(out / "table.md", text)
    if publish:
        write_results(RESULTS_NAME, text, payload, folder=results)


def main(argv: list[str] | None = None, results: Path = RESULTS) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="output folder of the comparison")
    parser.add_argument("--backbone", help="teacher backbone (default: all-MiniLM-L6-v2)")
    parser.add_argument("--conll", type=Path, help="CoNLL folder (default: the recipe's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--max-train", type=int, help="fewer training sentences (tests)")
    parser.add_argument("--max-dev", type=int, help="fewer dev sentences (tests)")
    parser.add_argument("--iters", type=int, default=30, help="timed iterations per round")
    args = parser.parse_args(argv)
    data: dict[str, Any] = {"data.max_train_examples": args.max_train,
                            "data.max_dev_examples": args.max_dev}  # fmt: skip
    # every method's recipe reads the NER recipe's data, HomoDistil's names none of its own
    data["data.source"] = str(args.conll) if args.conll else load_recipe(RECIPE).data.source
    teacher_dir = teacher(args.backbone or default_teacher_backbone(), data, args.out)
    runs: list[dict] = []
    latency: dict = {}
    sizes: dict[str, float] = {}
    for seed in args.seeds:
        for key in METHODS:
            runs.append(run_one(teacher_dir, data, key, seed, seed == args.seeds[0], args.out))
            write_table(args.out, runs, latency, sizes, publish=False, results=results)
        if not latency:  # the shipped files are the first seed's: timed before other seeds
            latency = timing(args.out, teacher_dir, data, args.seeds[0], args.iters)
            sizes = {v[0]: Path(v[1]).stat().st_size / 2**20 for v in latency["variants"]}
    write_table(args.out, runs, latency, sizes, publish=True, results=results)
    print((args.out / "table.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
