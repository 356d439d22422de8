"""HomoDistil against same-size baselines on one teacher, data and step budget.

`make bench-prune` runs this on the demo teacher (all-MiniLM-L6-v2 fine-tuned on SST-2) at
three sizes, about 1/2, 1/3 and 1/4 of the teacher's non-embedding weights:

- HomoDistil: `recipes/homodistil.yaml`'s method (prune while distilling, cubic schedule);
- one-shot: the same loss and steps, but every unit is cut at once after a short scoring
  phase (importance accumulated over the first 5 % of the steps), then distilled;
- layer dropping + KD: a shallower student cut from teacher layers, KD + hidden MSE (the
  distillation library's default), 3 layers for 1/2, 2 layers for 1/3 and (the nearest
  larger) for 1/4.

All three train 400 steps of 32 on the same 12,800 sentences with the same loss (KD at T 2,
alpha 0.5, plus hidden-state MSE) and learning rate (2e-4), so the method is what differs.
Every run is a run folder under OUT (resumable); the students and the teacher are then
exported to ONNX and timed in one interleaved run, so the latency ratios share a machine
state. Writes `table.md`, `table.json` and `gap.png` (the prediction gap while pruning).
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from benchmarks.report import EN_DASH, TIMES
from compressor import atomic
from compressor.pipeline import compress
from compressor.recipe import load_recipe
from compressor.runfolder import RunFolder

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
STEPS = 400
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
# the layer-dropping student of the same (or nearest larger) size
LAYERS = {"half": 3, "third": 2, "quarter": 2}
ONE_SHOT = {"prune.begin": 0.05, "prune.end": 0.0525}


def recipes(size: str, seed: int) -> dict[str, tuple[str, object]]:
    """method -> (label, recipe) at one size."""
    homodistil = {**SHARED, **SIZES[size], "prune.train.max_steps": STEPS,
                  "prune.train.seed": seed}  # fmt: skip
    layers = {**SHARED, "student.layers": LAYERS[size], "train.lr": 2e-4, "train.seed": seed}
    recipe = RECIPES / "homodistil.yaml"
    return {
        "homodistil": ("HomoDistil (iterative, cubic)", load_recipe(recipe, homodistil)),
        "one_shot": ("one-shot pruning + distillation",
                     load_recipe(recipe, {**homodistil, **ONE_SHOT})),
        "layer_drop": (f"layer dropping ({LAYERS[size]} layers) + KD", load_recipe(None, layers)),
    }  # fmt: skip


def run_dir(out: Path, size: str, method: str) -> Path:
    """A layer-dropping run serves every size it matches, so it is filed by depth."""
    return out / f"layers-{LAYERS[size]}" if method == "layer_drop" else out / size / method


def run_all(teacher: str, out: Path, seed: int) -> None:
    for size in SIZES:
        for method, (_label, recipe) in recipes(size, seed).items():
            folder = run_dir(out, size, method)
            started = (folder / "state.json").is_file()
            if not started or not RunFolder.open(folder).done("evaluate"):
                compress(teacher, recipe, folder, overwrite=False, resume=started,
                         skip_benchmark=True)  # fmt: skip


def latency(teacher: str, out: Path, threads: int) -> dict:
    """Teacher and every student as ONNX, timed in one interleaved run."""
    from benchmarks.latency import Variant, run_latency, speedups
    from compressor.models import resolve_model_dir
    from exporters.onnx import export_onnx

    teacher_onnx = out / "teacher_onnx" / "model.onnx"
    if not teacher_onnx.is_file():
        export_onnx(Path(resolve_model_dir(teacher)), teacher_onnx.parent, opset=18)
    variants = [Variant("teacher", teacher_onnx, "onnxruntime")]
    folders = dict.fromkeys(run_dir(out, size, m) for size in SIZES for m in recipes(size, 0))
    for folder in folders:
        label = str(folder.relative_to(out))
        variants.append(Variant(label, folder / "onnx" / "model.onnx", "onnxruntime"))
    results = run_latency(variants, batches=(1, 32), seq_lens=(128,), threads=threads,
                          warmup=5, iters=20, rounds=3)  # fmt: skip
    pairs = [("teacher", v.label) for v in variants[1:]]
    return {"results": results, "speedups": speedups(results, pairs), "threads": threads}


def rows(out: Path, seed: int, timing: dict) -> list[dict]:
    table = []
    for size in SIZES:
        for method, (label, _recipe) in recipes(size, seed).items():
            folder = run_dir(out, size, method)
            run = RunFolder.open(folder)
            trained = run.result("prune") or run.result("distill")
            accs = run.result("evaluate")["dev_accuracy"]
            ratio = {
                s["batch"]: s
                for s in timing["speedups"]
                if s["candidate"] == str(folder.relative_to(out))
            }  # fmt: skip
            table.append({
                "size": size,
                "method": method,
                "label": label,
                "dev_accuracy": accs["student"],
                "teacher_dev_accuracy": accs["teacher"],
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
            style = "-" if row["method"] == "homodistil" else "--"
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


def write_table(out: Path, table: list[dict], timing: dict) -> None:
    atomic.write_json(out / "table.json", {"rows": table, "latency": timing})
    atomic.write_bytes(out / "gap.png", gap_plot(table))

    def ratio(s: dict | None) -> str:
        if s is None:
            return "—"
        return f"{s['ratio']:.2f}{TIMES} ({s['ratio_min']:.2f}{EN_DASH}{s['ratio_max']:.2f})"

    lines = [
        f"Teacher dev accuracy {table[0]['teacher_dev_accuracy'] * 100:.2f} %, "
        f"{table[0]['teacher_non_embedding_parameters'] / 1e6:.2f} M non-embedding parameters. "
        f"ONNX Runtime CPU, {timing['threads']} threads, seq 128; speed-up = teacher p50 / "
        f"student p50, median of paired rounds (min{EN_DASH}max).",
        "",
        "| size | method | dev acc % | non-emb params (M) | of teacher | all params (M) "
        "| architecture | speed-up b1 | speed-up b32 | max gap KL |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        arch = r["architecture"]
        shape = (f"hidden {arch['hidden_size']}, FFN {arch['intermediate_size']}, heads "
                 f"{arch['heads_per_layer'][0]}") if arch else "—"  # fmt: skip
        gap = max((kl for _s, kl in r["gap"]), default=None)
        lines.append(
            f"| {r['size']} | {r['label']} | {r['dev_accuracy'] * 100:.2f} | "
            f"{r['non_embedding_parameters'] / 1e6:.2f} | "
            f"{r['non_embedding_parameters'] / r['teacher_non_embedding_parameters']:.0%} | "
            f"{r['parameters'] / 1e6:.2f} | {shape} | {ratio(r['speedup_batch1'])} | "
            f"{ratio(r['speedup_batch32'])} | {'—' if gap is None else f'{gap:.4f}'} |"
        )
    atomic.write_text(out / "table.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("teacher", help="fine-tuned teacher (a finetune run or model folder)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    run_all(args.teacher, args.out, args.seed)
    timing = latency(args.teacher, args.out, args.threads)
    write_table(args.out, rows(args.out, args.seed, timing), timing)


if __name__ == "__main__":
    main()
