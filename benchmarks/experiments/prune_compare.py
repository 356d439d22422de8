"""HomoDistil against same-size baselines on one teacher, data and step budget.

`make bench-prune` runs this on the demo teacher (all-MiniLM-L6-v2 fine-tuned on SST-2) at
the issue's sizes, about 1/2 and 1/4 of the teacher's non-embedding weights (`--sizes`
adds 'third', about 1/3):

- HomoDistil: `recipes/homodistil.yaml`'s method (prune while distilling, cubic schedule);
- one-shot + fine-tuning: the classic baseline, every unit cut at once after a short
  scoring phase (importance accumulated over the first 5 % of the steps), then trained on
  the hard labels alone (alpha 0, no intermediate terms): no teacher in the loss;
- one-shot + distillation: the same cut, then HomoDistil's loss, so that the iterative
  schedule is the only difference from HomoDistil;
- layer dropping + KD: a shallower student cut from teacher layers, KD + hidden MSE (the
  distillation library's default): 3 layers for 1/2, 2 for 1/3, and both 1 and 2 layers
  for 1/4, which lies between them (MiniLM-L6: 1 layer keeps 18 %, 2 layers 34 %, the
  1/4 cut 26 %), so neither row alone flatters or handicaps the comparison.

All train 400 steps of 32 on the same 12,800 sentences at the same learning rate (2e-4);
the distilled ones share one loss (KD at T 2, alpha 0.5, plus hidden-state MSE), so the
method is what differs. Every run is a run folder under OUT (resumable); the students whose
ONNX export passed parity and the teacher, exported and parity-checked the same way, are
timed in one interleaved run, so the latency ratios share a machine state. A student whose
export failed parity is listed as failed and not timed. Writes `table.md`, `table.json`
and `gap.png` (the prediction gap while pruning), and the table into
benchmarks/results/bench-prune.md and .json.
"""

from __future__ import annotations

import argparse
import io
from dataclasses import dataclass
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from benchmarks.experiments.results import RESULTS, write_results
from benchmarks.report import EN_DASH, TIMES
from compressor import atomic, markdown
from compressor.errors import UserError
from compressor.layout import graphs_dir
from compressor.pipeline import compress
from compressor.recipe import Recipe, load_recipe
from compressor.runfolder import RunFolder

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
STEPS = 400
RESULTS_NAME = "bench-prune"
SHARED = {
    "data.max_train_examples": 12800,
    "train.max_steps": STEPS,
    "train.eval_every": 100,
    "train.checkpoint_every": 100,
    "quantize.mode": "none",
}
# MiniLM-L6: hidden 384, 12 heads of 32, FFN 1536. Non-embedding weights kept: half = 6
# heads and FFN 768 at full width (50 %); third = the same at hidden 256 (34 %, the size of
# a 2-layer cut); quarter = hidden 256, 6 heads, FFN 512 (26 %). hidden 384 = not pruned.
SIZES = {
    "half": {"prune.hidden": 384, "prune.heads": 6, "prune.ffn": 768},
    "third": {"prune.hidden": 256, "prune.heads": 6, "prune.ffn": 768},
    "quarter": {"prune.hidden": 256, "prune.heads": 6, "prune.ffn": 512},
}
DEFAULT_SIZES = ("half", "quarter")
# layer-dropping students of the same size, or the nearest on each side of it
LAYERS = {"half": (3,), "third": (2,), "quarter": (1, 2)}
ONE_SHOT = {"prune.begin": 0.05, "prune.end": 0.0525}
HARD_LABELS_ONLY = {"prune.distill.alpha": 0.0, "prune.distill.intermediate": []}
TEACHER_OPSET = 18


@dataclass
class Contender:
    """One method at one size: its table label, recipe and run folder (relative to OUT)."""

    label: str
    recipe: Recipe
    folder: str


def recipes(size: str, seed: int) -> dict[str, Contender]:
    """method -> contender at one size. A layer-dropping run serves every size it is
    compared at, so it is filed by depth."""
    homodistil = {**SHARED, **SIZES[size], "prune.train.max_steps": STEPS,
                  "prune.train.seed": seed}  # fmt: skip
    one_shot = {**homodistil, **ONE_SHOT}
    recipe = RECIPES / "homodistil.yaml"
    methods = {
        "homodistil": Contender("HomoDistil (iterative, cubic)", load_recipe(recipe, homodistil),
                                f"{size}/homodistil"),
        "one_shot_ft": Contender("one-shot pruning + fine-tuning (hard labels)",
                                 load_recipe(recipe, {**one_shot, **HARD_LABELS_ONLY}),
                                 f"{size}/one_shot_ft"),
        "one_shot": Contender("one-shot pruning + distillation", load_recipe(recipe, one_shot),
                              f"{size}/one_shot"),
    }  # fmt: skip
    for depth in LAYERS[size]:
        layers = {**SHARED, "student.layers": depth, "train.lr": 2e-4, "train.seed": seed}
        methods[f"layer_drop_{depth}"] = Contender(
            f"layer dropping ({depth} layer{'s' * (depth > 1)}) + KD",
            load_recipe(None, layers),
            f"layers-{depth}",
        )
    return methods


def contenders(sizes: list[str], seed: int) -> list[tuple[str, str, Contender]]:
    """(size, method, contender) of every row, in table order."""
    return [(size, method, c) for size in sizes for method, c in recipes(size, seed).items()]


def export_failure(folder: Path) -> str | None:
    """Why a run's student must not be timed (its ONNX file missing or not matching its
    PyTorch model), or None when its export passed parity."""
    export = RunFolder.open(folder).result("export")
    if not export:
        return "no ONNX file (export failed or did not run)"
    parity = export["parity"]
    if not parity["passed"]:
        return (f"ONNX failed parity (max |logit diff| {parity['max_abs_diff']:.2e}, "
                f"argmax agreement {parity['argmax_agreement']:.1%})")  # fmt: skip
    return None


def run_all(teacher: str, out: Path, seed: int, sizes: list[str]) -> None:
    """Train, export and evaluate every run not yet evaluated. An export refused for failing
    parity is left recorded in its folder (the row is marked failed); any other error stops."""
    runs = {c.folder: c.recipe for _size, _method, c in contenders(sizes, seed)}
    for name, recipe in runs.items():
        folder = out / name
        started = (folder / "state.json").is_file()
        if started and RunFolder.open(folder).done("evaluate"):
            continue
        try:
            compress(teacher, recipe, folder, overwrite=False, resume=started,
                     skip_benchmark=True)  # fmt: skip
        except UserError as error:
            if not _export_refused(folder):
                raise
            print(f"{name}: {error}")


def _export_refused(folder: Path) -> bool:
    """The run trained its student but has no export: the export stage is what refused."""
    if not (folder / "state.json").is_file():
        return False
    run = RunFolder.open(folder)
    return (run.done("prune") or run.done("distill")) and not run.done("export")


def teacher_onnx(teacher: str, out: Path, recipe: Recipe) -> Path:
    """The teacher as ONNX, held to the students' parity gate (same dev sentences and
    tolerance) on every call: a speed-up measured against a teacher file that computes
    something else would mean nothing."""
    from compressor.data import load_task_data
    from compressor.models import resolve_model_dir
    from exporters.onnx import export_onnx
    from exporters.parity import check_parity

    model_dir = Path(resolve_model_dir(teacher))
    package = out / "teacher_onnx"
    path = graphs_dir(package) / "model.onnx"
    if not path.is_file():
        path = export_onnx(model_dir, package, opset=TEACHER_OPSET)
    probe = load_task_data(recipe.data).dev.take(recipe.export.parity_samples)
    parity = check_parity(model_dir, path, probe.texts, probe.pairs,
                          tolerance=recipe.export.parity_tolerance,
                          max_length=recipe.data.max_length)  # fmt: skip
    if not parity.passed:
        raise UserError(
            f"the teacher's ONNX file {path} does not match its PyTorch model on {parity.n} "
            f"dev sentences (max |logit diff| {parity.max_abs_diff:.2e}, tolerance "
            f"{parity.tolerance:g}, argmax agreement {parity.argmax_agreement:.1%}) — nothing "
            f"was timed; delete {package} to re-export it"
        )
    return path


def latency(teacher: str, out: Path, threads: int, sizes: list[str], seed: int) -> dict:
    """Teacher and every student whose export passed parity, as ONNX, timed in one
    interleaved run."""
    from benchmarks.latency import Variant, run_latency, speedups

    rows = contenders(sizes, seed)
    reference = teacher_onnx(teacher, out, rows[0][2].recipe)
    variants = [Variant("teacher", reference, "onnxruntime")]
    for name in dict.fromkeys(c.folder for _size, _method, c in rows):
        if export_failure(out / name) is None:
            variants.append(Variant(name, graphs_dir(out / name / "onnx") / "model.onnx",
                                    "onnxruntime"))  # fmt: skip
    results = run_latency(variants, batches=(1, 32), seq_lens=(128,), threads=threads,
                          warmup=5, iters=20, rounds=3)  # fmt: skip
    pairs = [("teacher", v.label) for v in variants[1:]]
    return {"results": results, "speedups": speedups(results, pairs), "threads": threads}


def training_plan(recipe: Recipe) -> dict:
    """Steps, batch, lr and seed of a run's training loop (its pruning stage's when it prunes):
    the budget the table claims is shared, read from the recipes rather than restated."""
    train = recipe.prune_plan()[1] if recipe.prune.enabled else recipe.train
    return {"steps": train.max_steps, "batch_size": train.batch_size, "lr": train.lr,
            "seed": train.seed}  # fmt: skip


def rows(out: Path, seed: int, sizes: list[str], timing: dict) -> list[dict]:
    table = []
    for size, method, contender in contenders(sizes, seed):
        folder = out / contender.folder
        run = RunFolder.open(folder)
        trained = run.result("prune") or run.result("distill")
        accs = run.result("evaluate").get("dev_accuracy", {})
        ratio = {s["batch"]: s for s in timing["speedups"] if s["candidate"] == contender.folder}
        table.append({
            "size": size,
            "method": method,
            "label": contender.label,
            "failed": export_failure(folder),
            "train": training_plan(contender.recipe),
            "dev_accuracy": accs.get("student"),
            "teacher_dev_accuracy": accs.get("teacher"),
            "non_embedding_parameters": trained["student_non_embedding_parameters"],
            "teacher_non_embedding_parameters": trained["teacher_non_embedding_parameters"],
            "parameters": trained["student_parameters"],
            "speedup_batch1": ratio.get(1),
            "speedup_batch32": ratio.get(32),
            "architecture": (run.result("prune") or {}).get("architecture"),
            "gap": [(t["step"], t["probe_kl"])
                    for t in (run.result("prune") or {}).get("trace", [])
                    if "probe_kl" in t],
        })  # fmt: skip
    return table


def gap_plot(table: list[dict]) -> bytes:
    fig = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for row in table:
        if row["gap"]:
            steps, kl = zip(*row["gap"], strict=True)
            style = {"homodistil": "-", "one_shot": "--"}.get(row["method"], ":")
            ax.plot(steps, kl, style, label=f"{row['size']}: {row['label']}")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_xlabel("step")
    ax.set_ylabel("KL(teacher || student), 64 dev sentences")
    ax.set_title("prediction gap while pruning")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def write_table(out: Path, table: list[dict], timing: dict, *, results: Path | None = None) -> str:
    """Table, plot and JSON into the run folder and, with `results`, the table into the
    committed results file: the same text in both."""
    data = {"rows": table, "latency": timing}
    text = render(table, timing)
    atomic.write_json(out / "table.json", data)
    atomic.write_bytes(out / "gap.png", gap_plot(table))
    atomic.write_text(out / "table.md", text)
    if results is not None:
        write_results(RESULTS_NAME, text, data, folder=results)
    return text


def _ratio(s: dict | None) -> str:
    if s is None:
        return markdown.DASH
    return f"{s['ratio']:.2f}{TIMES} ({s['ratio_min']:.2f}{EN_DASH}{s['ratio_max']:.2f})"


def _percent(accuracy: float | None) -> str:
    return markdown.DASH if accuracy is None else f"{accuracy * 100:.2f}"


def _cells(r: dict) -> list[object]:
    arch = r["architecture"]
    shape = (f"hidden {arch['hidden_size']}, FFN {arch['intermediate_size']}, heads "
             f"{arch['heads_per_layer'][0]}") if arch else None  # fmt: skip
    gap = max((kl for _s, kl in r["gap"]), default=None)
    speed = ("failed: not timed",) * 2 if r["failed"] else (
        _ratio(r["speedup_batch1"]), _ratio(r["speedup_batch32"]))  # fmt: skip
    return [
        r["size"], r["label"], _percent(r["dev_accuracy"]),
        f"{r['non_embedding_parameters'] / 1e6:.2f}",
        f"{r['non_embedding_parameters'] / r['teacher_non_embedding_parameters']:.0%}",
        f"{r['parameters'] / 1e6:.2f}", shape, *speed, None if gap is None else f"{gap:.4f}",
    ]  # fmt: skip


def _plan(train: dict) -> str:
    return (f"{train['steps']} steps of batch {train['batch_size']} at lr {train['lr']:g}, "
            f"seed {train['seed']}")  # fmt: skip


def render(table: list[dict], timing: dict) -> str:
    """The table with the budget, seed and timing setup it was measured under, and the reason
    for every student not timed, so that the results file stands alone."""
    teacher_accuracy = next(
        (r["teacher_dev_accuracy"] for r in table if r["teacher_dev_accuracy"] is not None), None
    )
    lines = [
        f"Teacher dev accuracy {_percent(teacher_accuracy)} %, "
        f"{table[0]['teacher_non_embedding_parameters'] / 1e6:.2f} M non-embedding parameters. "
        f"Students: {'; '.join(sorted({_plan(r['train']) for r in table}))}, on at most "
        f"{SHARED['data.max_train_examples']:,} training examples. "
        f"ONNX Runtime CPU, {timing['threads']} threads, seq 128; "
        f"speed-up = teacher p50 / student p50, median of paired rounds (min{EN_DASH}max). "
        "Teacher and students are timed only when their ONNX file passed parity with PyTorch.",
        "",
        markdown.table(
            ["size", "method", "dev acc %", "non-emb params (M)", "of teacher", "all params (M)",
             "architecture", "speed-up b1", "speed-up b32", "max gap KL"],
            [_cells(r) for r in table],
        ).rstrip("\n"),
    ]  # fmt: skip
    failed = {(r["label"], r["failed"]) for r in table if r["failed"]}
    lines += ["", *(f"- {label}: {why}" for label, why in sorted(failed))] if failed else []
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("teacher", help="fine-tuned teacher (a finetune run or model folder)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--sizes",
        nargs="+",
        choices=list(SIZES),
        default=list(DEFAULT_SIZES),
        help="sizes to compare (default: the issue's 1/2 and 1/4; 'third' adds three runs)",
    )
    args = parser.parse_args()
    run_all(args.teacher, args.out, args.seed, args.sizes)
    timing = latency(args.teacher, args.out, args.threads, args.sizes, args.seed)
    text = write_table(
        args.out, rows(args.out, args.seed, args.sizes, timing), timing, results=RESULTS
    )
    print(text)


if __name__ == "__main__":
    main()
