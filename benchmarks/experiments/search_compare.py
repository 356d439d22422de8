"""`compressor search` against today's default recipe, on one teacher.

`make bench-search` runs this on the demo teacher (all-MiniLM-L6-v2 fine-tuned on SST-2):
a CPU search (`--target cpu`, batch 1, the dev sentences' own lengths) within `--budget`
at `--max-drop`, whose chosen candidate is trained again at full budget; the demo recipe
(3-layer transformer, dynamic int8) as the default to beat; then the teacher's ONNX file, its
own dynamic int8 file, the default student's int8 file and the search's shipped file timed
in one interleaved run at that shape. Optionally the same search on `arm:<profile>`
(roofline estimates): does it choose differently? Every part is resumable (the searches
continue their studies with the budget again; finished parts are skipped). Writes
benchmarks/results/bench-search.md / .json.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.experiments.results import write_results
from benchmarks.experiments.timing import cached_timing
from benchmarks.report import EN_DASH, TIMES
from compressor import atomic, markdown
from compressor.pipeline import compress
from compressor.recipe import Recipe, load_recipe
from compressor.runfolder import RunFolder
from compressor.search import SearchTarget, parse_budget, search
from compressor.search.result import Summary as SearchSummary
from compressor.search.result import headers, trial_rows

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
RESULTS_NAME = "bench-search"
GOAL = {"drop_points": 1.0, "vs_teacher_int8": 5.0}


def demo_recipe(args: argparse.Namespace) -> Recipe:
    return load_recipe(RECIPES / "demo.yaml", {"data.max_train_examples": args.train_examples})


def run_search(teacher: str, out: Path, target: SearchTarget, args: argparse.Namespace,
               budget: float, ship: bool) -> dict[str, Any]:  # fmt: skip
    """A finished search's summary, or the search run (resumed when its folder exists)."""
    summary = out / "search.json"
    if summary.is_file() and (not ship or atomic.read_json(summary).get("shipped")):
        return atomic.read_json(summary)
    search(teacher, demo_recipe(args), out, target, max_drop=args.max_drop, budget_s=budget,
           resume=(out / "state.json").is_file(), ship=ship)  # fmt: skip
    return atomic.read_json(summary)


def default_run(teacher: str, out: Path, args: argparse.Namespace) -> RunFolder:
    """The demo recipe as `compress` runs it: what the product ships without a search."""
    path = out / "default"
    started = (path / "state.json").is_file()
    if not (started and RunFolder.open(path).done("evaluate")):
        compress(teacher, demo_recipe(args), path, overwrite=False, resume=started,
                 skip_benchmark=True)  # fmt: skip
    return RunFolder.open(path)


def latency(out: Path, files: dict[str, Path], lengths: Callable[[], list[int]],
            args: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    """Every file at batch 1 on the dev lengths, interleaved; cached while the files match."""
    from benchmarks.latency import Variant

    variants = [Variant(label, path, "onnxruntime") for label, path in files.items()]
    return cached_timing(out / "latency.json", variants, lengths=lengths, batches=(1,),
                         seq_lens=("dev",), threads=args.threads, iters=args.iters)  # fmt: skip


def table(default: RunFolder, cpu: dict[str, Any], files: dict[str, Path],
          timing: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """Dev accuracy, drop, size and both speed-ups of every file, from one timing run."""
    scores = default.result("evaluate")["dev_accuracy"]
    accuracy = {"teacher": scores["teacher"], "teacher int8": scores["teacher_int8"],
                "default recipe int8": scores["student_int8"],
                "search's choice": cpu["shipped"]["dev_accuracy"]}  # fmt: skip
    ratio = {(s["baseline"], s["candidate"]): s for s in timing["speedups"]}
    rows = [
        {
            "label": label,
            "dev_accuracy": accuracy[label],
            "drop_points": round(100 * (scores["teacher"] - accuracy[label]), 3),
            "file_mb": path.stat().st_size / 2**20,
            "vs_teacher": ratio.get(("teacher", label)),
            "vs_teacher_int8": ratio.get(("teacher int8", label)),
        }
        for label, path in files.items()
    ]
    return {"rows": rows, "search": cpu}


def _ratio(s: dict | None) -> str:
    if s is None:
        return markdown.DASH
    return f"{s['ratio']:.2f}{TIMES} ({s['ratio_min']:.2f}{EN_DASH}{s['ratio_max']:.2f})"


def _chosen(summary: dict[str, Any]) -> str:
    choice = summary.get("choice")
    if not choice:
        return "nothing finished"
    row = next(r for r in summary["rows"] if r["number"] == choice["number"])
    settings = ", ".join(f"{k}={json.dumps(row['settings'][k])}"
                         for k in row.get("searched", []) if k in row["settings"])  # fmt: skip
    return f"trial {choice['number']} ({row['kind']}: {settings}); {choice['reason']}"


def goal_verdict(data: dict[str, Any]) -> str:
    chosen = data["rows"][-1]
    speed = (chosen["vs_teacher_int8"] or {}).get("ratio")
    met = speed is not None and speed >= GOAL["vs_teacher_int8"]
    met = met and chosen["drop_points"] <= GOAL["drop_points"]
    state = "**Goal reached**" if met else "**Goal not reached**"
    return (f"{state} (a student within {GOAL['drop_points']:g} point of the teacher, at least "
            f"{GOAL['vs_teacher_int8']:g}{TIMES} faster than the teacher's own int8 file): the "
            f"search's choice loses {chosen['drop_points']:.2f} points at "
            f"{_ratio(chosen['vs_teacher_int8'])}.")  # fmt: skip


def render(data: dict[str, Any], arm: dict[str, Any] | None, args: argparse.Namespace) -> str:
    head = ["file", "dev acc %", "drop (pts)", "file MB", "vs teacher", "vs teacher int8"]
    body = [[r["label"], f"{100 * r['dev_accuracy']:.2f}", f"{r['drop_points']:.2f}",
             f"{r['file_mb']:.1f}",
             _ratio(r["vs_teacher"]), _ratio(r["vs_teacher_int8"])]
            for r in data["rows"]]  # fmt: skip
    cpu = data["search"]
    states = [r["state"] for r in cpu["rows"] if r.get("repeat_of") is None]
    lines = [
        f"Search: {args.budget} on {cpu['target']}, --max-drop {args.max_drop:g}, demo recipe "
        f"data ({args.train_examples:,} training sentences). Trials: "
        f"{states.count('COMPLETE')} finished, {states.count('PRUNED')} stopped early, "
        f"{states.count('FAIL')} failed, "
        f"{sum(r.get('repeat_of') is not None for r in cpu['rows'])} repeats reused. "
        f"Chosen: {_chosen(cpu)}. Its file is trained again at the recipe's full budget and "
        "scored on the whole dev set; timing: ONNX Runtime CPU, batch 1, dev lengths, "
        f"{args.threads} threads, median of 3 paired rounds (min{EN_DASH}max).",
        "",
        goal_verdict(data),
        "",
        markdown.table(head, body).rstrip("\n"),
    ]
    if arm is not None:
        lines += ["", f"The same search on {arm['target']}: chosen {_chosen(arm)}."]
    summary = _summary(cpu)
    lines += ["", "Every trial of the CPU search:", "",
              markdown.table(headers(summary), trial_rows(summary)).rstrip("\n")]  # fmt: skip
    return "\n".join(lines) + "\n"


def _summary(record: dict[str, Any]) -> Any:
    """search.json back as the search's own Summary, so its table renders here unchanged."""
    from compressor.search.result import Choice, Row
    from compressor.search.trial import Outcome

    rows = [Row(**{**r, "outcome": Outcome(**r["outcome"]) if r["outcome"] else None})
            for r in record["rows"]]  # fmt: skip
    choice = Choice(**record["choice"]) if record.get("choice") else None
    return SearchSummary(**{**record, "rows": rows, "choice": choice})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("teacher", help="fine-tuned teacher (a finetune run or model folder)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--budget", default="60m", help="each search's wall clock")
    parser.add_argument("--max-drop", type=float, default=1.0)
    parser.add_argument("--train-examples", type=int, default=12800)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument(
        "--arm",
        default="cortex-a55",
        help="profile of the second search (arm:<profile>); 'none' skips it",
    )
    args = parser.parse_args()
    from compressor.data import load_task_data
    from compressor.pipeline.benchmark import dev_lengths

    budget = parse_budget(args.budget)
    cpu_target = SearchTarget("cpu", None, args.threads, 1, "dev", args.iters)
    cpu = run_search(args.teacher, args.out / "cpu", cpu_target, args, budget, ship=True)
    default = default_run(args.teacher, args.out, args)
    best = RunFolder.open(Path(cpu["shipped"]["folder"]))
    teacher_files = default.result("teacher_files")
    files = {
        "teacher": Path(teacher_files["onnx"]),
        "teacher int8": Path(teacher_files["int8"]["path"]),
        "default recipe int8": Path(default.result("quantize")["path"]),
        "search's choice": Path(best.result("quantize").get("path")
                                or best.result("export")["path"]),
    }  # fmt: skip
    data_cfg = default.recipe().data
    timing = latency(args.out, files, lambda: dev_lengths(
        default.path / "model", load_task_data(data_cfg), data_cfg.max_length), args)  # fmt: skip
    data = table(default, cpu, files, timing)
    arm = None
    if args.arm != "none":
        arm_target = SearchTarget("arm", args.arm, 4, 1, 128)
        arm = run_search(args.teacher, args.out / f"arm-{args.arm}", arm_target, args, budget,
                         ship=False)  # fmt: skip
    text = render(data, arm, args)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    write_results(RESULTS_NAME, text, {"args": settings, "timing": timing, **data, "arm": arm})
    print(text)


if __name__ == "__main__":
    main()
