"""Side-by-side distillation methods on one teacher, data, student size, step count and seed.

`make bench-distill` runs this on the demo teacher (all-MiniLM-L6-v2 fine-tuned on SST-2):
each method is one recipe from `recipes/` with the demo's data and training settings laid
over it, so only the loss terms differ. Writes `table.json` and `table.md` in the output.
"""

from __future__ import annotations

import sys
from pathlib import Path

from compressor import atomic
from compressor.pipeline import compress
from compressor.recipe import load_recipe
from compressor.runfolder import RunFolder

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
# method -> (recipe file or None for defaults, extra dotted overrides)
METHODS: dict[str, tuple[str | None, dict]] = {
    "labels only (no teacher)": (None, {"distill.alpha": 0.0, "distill.intermediate": []}),
    "Hinton KD": ("kd.yaml", {}),
    "KD + hidden MSE (default)": (None, {}),
    "TinyBERT-style (KD + hidden + attention, one stage)": ("tinybert_one_stage.yaml", {}),
    "MiniLM-style (KD + last-layer attention KL)": ("minilm.yaml", {}),
    "PKD-skip": ("pkd.yaml", {}),
    "DistilBERT-style (KD + cosine)": ("distilbert.yaml", {}),
}
SHARED = {
    "data.max_train_examples": 12800,
    "train.lr": 2e-4,
    "train.eval_every": 100,
    "train.checkpoint_every": 100,
    "student.layers": 3,
    "quantize.mode": "none",
}


def run(teacher: str, out: Path, seed: int = 42) -> list[dict]:
    rows = []
    for i, (method, (recipe_name, overrides)) in enumerate(METHODS.items()):
        recipe = load_recipe(
            RECIPES / recipe_name if recipe_name else None,
            {**SHARED, **overrides, "train.seed": seed},
        )
        run_dir = out / f"method{i}"
        done = (run_dir / "state.json").is_file()
        if not done or not RunFolder.open(run_dir).done("evaluate"):
            compress(teacher, recipe, run_dir, overwrite=not done, resume=done,
                     skip_benchmark=True)  # fmt: skip
        state = RunFolder.open(run_dir)
        distill = state.result("distill")
        rows.append({
            "method": method,
            "recipe": recipe_name or "defaults",
            "dev_accuracy": state.result("evaluate")["dev_accuracy"]["student"],
            "teacher_dev_accuracy": state.result("evaluate")["dev_accuracy"]["teacher"],
            "steps": distill["steps"],
            "train_samples_per_s": distill["train_samples_per_s"],
            "seed": seed,
        })  # fmt: skip
        atomic.write_json(out / "table.json", rows)
    lines = [
        "| method | recipe | student dev acc | teacher dev acc | steps | train samples/s |",
        "|---|---|---|---|---|---|",
        *(
            f"| {r['method']} | {r['recipe']} | {r['dev_accuracy'] * 100:.2f}% | "
            f"{r['teacher_dev_accuracy'] * 100:.2f}% | {r['steps']} | {r['train_samples_per_s']} |"
            for r in rows
        ),
    ]
    atomic.write_text(out / "table.md", "\n".join(lines) + "\n")
    return rows


if __name__ == "__main__":
    teacher_dir, out_dir = sys.argv[1], Path(sys.argv[2])
    for row in run(teacher_dir, out_dir):
        print(row)
