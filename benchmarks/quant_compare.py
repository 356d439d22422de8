"""Every deployable file of one student, scored and timed side by side, and the same
quantization done with optimum's `ORTQuantizer` as the peer baseline.

`make bench-quant` runs this on the demo's 3-layer student (run `make demo` first). Files:
fp32 ONNX (optimum export), ORT-optimized ONNX, our dynamic int8, our static int8 QDQ
(MinMax and Entropy calibration on 128 training sentences), int4 weight-only, and optimum's
ORTQuantizer dynamic (avx2, per-channel) and static (avx2, MinMax on the same 128
sentences). Each file gets its SST-2 dev accuracy with ONNX Runtime, its size, and its CPU
latency at batch 1 and 32 in one interleaved run (each file in its own process), with the
speed-up over the fp32 file as a median of paired rounds. Writes `table.md` / `table.json`.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from benchmarks.report import EN_DASH, TIMES
from compressor import atomic
from compressor.artifacts import (
    calibration_feeds,
    export_checked,
    optimize_checked,
    quantize_checked,
)
from compressor.data import load_task_data
from compressor.recipe import QuantizeConfig, load_recipe

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "demo.yaml"
CALIBRATION = 128


def optimum_files(fp32: Path, feeds: list[dict], out: Path) -> dict[str, Path]:
    """optimum's ORTQuantizer, dynamic and static (MinMax over the same sentences)."""
    from datasets import Dataset
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoCalibrationConfig, AutoQuantizationConfig

    quantizer = ORTQuantizer.from_pretrained(fp32.parent, file_name=fp32.name)
    dynamic = AutoQuantizationConfig.avx2(is_static=False, per_channel=True)
    quantizer.quantize(dynamic, out, file_suffix="optimum_dynamic")
    rows = {k: [row for batch in feeds for row in batch[k]] for k in feeds[0]}
    dataset = Dataset.from_dict(rows)
    static = AutoQuantizationConfig.avx2(is_static=True, per_channel=False)
    quantizer = ORTQuantizer.from_pretrained(fp32.parent, file_name=fp32.name)
    ranges = quantizer.fit(
        dataset=dataset,
        calibration_config=AutoCalibrationConfig.minmax(dataset),
        operators_to_quantize=static.operators_to_quantize,
        onnx_augmented_model_name=out / "augmented_model.onnx",
    )
    quantizer.quantize(static, out, file_suffix="optimum_static", calibration_tensors_range=ranges)
    (out / "augmented_model.onnx").unlink(missing_ok=True)
    return {  # optimum names its output <stem>_<suffix>.onnx in the save folder
        "optimum dynamic int8": out / f"{fp32.stem}_optimum_dynamic.onnx",
        "optimum static int8": out / f"{fp32.stem}_optimum_static.onnx",
    }


def build(student: Path, out: Path) -> dict[str, Path]:
    """Every file of the comparison under `out/onnx`, ours and optimum's."""
    recipe = load_recipe(RECIPE)
    data = load_task_data(recipe.data)
    max_length, probe = recipe.data.max_length, data.dev.take(128)
    export = export_checked(student, out / "onnx", probe, opset=18, tolerance=1e-3,
                            max_length=max_length, recipe_hash=recipe.hash())  # fmt: skip
    fp32 = Path(export["path"])
    files = {"fp32": fp32}
    optimized = optimize_checked(fp32, student, probe, tolerance=1e-3, max_length=max_length,
                                 recipe_hash=recipe.hash())  # fmt: skip
    if optimized["path"]:
        files["ORT-optimized fp32"] = Path(optimized["path"])
    calibration = data.train.take(CALIBRATION)
    ours = {
        "dynamic int8": ("dynamic_int8", QuantizeConfig(mode="dynamic-int8")),
        "static int8 (MinMax)": ("static_minmax", QuantizeConfig(mode="static-int8")),
        "static int8 (Entropy)": (
            "static_entropy",
            QuantizeConfig(mode="static-int8", calibration="entropy"),
        ),
        "int4 weight-only": ("int4", QuantizeConfig(mode="int4")),
    }
    for label, (slug, cfg) in ours.items():
        made = quantize_checked(fp32, student, probe, cfg=cfg, calibration=calibration,
                                max_length=max_length, recipe_hash=recipe.hash())  # fmt: skip
        files[label] = fp32.with_name(f"model_{slug}.onnx")
        shutil.move(made["path"], files[label])
    feeds = calibration_feeds(fp32, calibration, max_length=max_length)
    files.update(optimum_files(fp32, feeds, fp32.parent))
    return files


def measure(files: dict[str, Path], threads: int) -> list[dict]:
    from benchmarks.evaluate import accuracy
    from benchmarks.latency import Variant, run_latency, speedups

    recipe = load_recipe(RECIPE)
    dev = load_task_data(recipe.data).dev
    results = run_latency([Variant(label, path, "onnxruntime") for label, path in files.items()],
                          batches=(1, 32), seq_lens=(128,), threads=threads, warmup=5,
                          iters=20, rounds=3)  # fmt: skip
    ratios = speedups(results, [("fp32", label) for label in files if label != "fp32"])
    rows = []
    for label, path in files.items():
        row = {
            "file": label,
            "path": str(path),
            "size_mb": round(path.stat().st_size / 2**20, 2),
            "dev_accuracy": accuracy(
                path, dev.texts, dev.pairs, dev.labels, max_length=recipe.data.max_length
            ),
        }
        for r in ratios:
            if r["candidate"] == label:
                row[f"speedup_b{r['batch']}"] = (r["ratio"], r["ratio_min"], r["ratio_max"])
        for r in results:
            if r["label"] == label:
                row[f"p50_ms_b{r['batch']}"] = r["p50_ms"]
        rows.append(row)
    return rows


def write_table(out: Path, rows: list[dict], threads: int) -> None:
    atomic.write_json(out / "table.json", rows)
    base = rows[0]["dev_accuracy"]

    def ratio(value: tuple | None) -> str:
        if value is None:
            return f"1.00{TIMES}"
        return f"{value[0]:.2f}{TIMES} ({value[1]:.2f}{EN_DASH}{value[2]:.2f})"

    lines = [
        f"ONNX Runtime CPU, {threads} threads, seq 128; speed-up = fp32 p50 / file p50, median "
        f"of paired rounds (min{EN_DASH}max); dev = SST-2 dev (872).",
        "",
        "| file | dev acc % | vs fp32 (pts) | size MB | speed-up b1 | speed-up b32 |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['file']} | {r['dev_accuracy'] * 100:.2f} | "
            f"{(r['dev_accuracy'] - base) * 100:+.2f} | {r['size_mb']} | "
            f"{ratio(r.get('speedup_b1'))} | {ratio(r.get('speedup_b32'))} |"
        )
    atomic.write_text(out / "table.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("student", type=Path, help="student model folder (HF)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    files = build(args.student, args.out)
    write_table(args.out, measure(files, args.threads), args.threads)


if __name__ == "__main__":
    main()
