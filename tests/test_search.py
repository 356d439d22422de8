"""`compressor search` on a tiny teacher: a few trials end to end, the budget, resuming
after a kill, two workers on one journal file, refusals, and the shipped run's gates."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from compressor.errors import UserError
from compressor.recipe import Recipe, load_recipe
from compressor.search import SearchTarget, plan, search
from compressor.search.result import Row, choose
from compressor.search.space import candidate_recipe, check_space, space_size
from compressor.search.speed import measure_speed
from compressor.search.study import RUNGS, STUDY, open_storage
from compressor.search.trial import Outcome
from tests.conftest import write_sst2_subset

TINY_SPACE = {
    "search.kinds": {
        "transformer": {"space": {"student.layers": [1, 2]}},
        "bilstm": {
            "fixed": {
                "distill.prediction_weight": 0.0,
                "distill.intermediate": [{"name": "logits_mse", "weight": 1.0}],
                "student.embedding_dim": 16,
                "student.mlp": 16,
                "train.lr": 1e-3,
            },
            "space": {"student.hidden": [8, 16]},
        },
    },
    "search.space": {"quantize.mode": ["dynamic-int8"]},
    "search.trial_steps": 6,
    "search.rungs": 2,
    "search.reduction_factor": 2,
    "search.startup_trials": 2,
}
FAST = SearchTarget("cpu", None, threads=1, batch=1, seq_len=16, iters=3, rounds=1)


def tiny_recipe(data: Path, **more: object) -> Recipe:
    return load_recipe(None, {
        "data.source": str(data), "data.max_length": 32, "train.batch_size": 16,
        "train.max_steps": 8, "export.parity_samples": 16, **TINY_SPACE, **more,
    })  # fmt: skip


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    return write_sst2_subset(folder, 96, 48)


def outcome(drop: float, speedup: float) -> Outcome:
    return Outcome(trial=0, folder="f", file="f.onnx", label="student ONNX int8", dev_accuracy=0.8,
                   drop=drop, size_mb=1.0, train_seconds=1.0,
                   speed={"mode": "measured", "vs_teacher": speedup * 2,
                          "vs_teacher_int8": speedup, "candidate_ms": 1.0})  # fmt: skip


def row(number: int, drop: float, speedup: float) -> Row:
    return Row(number, "COMPLETE", "bilstm", {}, outcome(drop, speedup), None, 1.0)


def test_choice_is_the_fastest_within_tolerance_else_the_most_accurate() -> None:
    rows = [row(0, 0.4, 3.0), row(1, 0.9, 8.0), row(2, 1.5, 20.0), row(3, 3.0, 40.0)]
    chosen = choose(rows, 1.0)
    assert chosen is not None and (chosen.number, chosen.met) == (1, True)
    fallback = choose(rows, 0.1)
    assert fallback is not None and (fallback.number, fallback.met) == (0, False)
    assert "0.30 points short" in fallback.reason


def test_space_is_checked_choice_by_choice(data: Path) -> None:
    recipe = tiny_recipe(data)
    check_space(recipe)
    assert space_size(recipe.search) == 4
    bad = tiny_recipe(data, **{"search.kinds": {"bilstm": {"space": {"student.hiden": [8]}}}})
    with pytest.raises(UserError, match=r"search.kinds.bilstm.space.student.hiden = 8: .*"
                       r"unknown key"):  # fmt: skip
        check_space(bad)
    wrong = tiny_recipe(data, **{"search.space": {"quantize.mode": ["int3"]}})
    with pytest.raises(UserError, match=r"search.space.quantize.mode = \"int3\""):
        check_space(wrong)
    candidate = candidate_recipe(recipe, {"student.kind": "bilstm", "student.hidden": 8},
                                 steps=6, eval_every=3)  # fmt: skip
    assert (candidate.train.max_steps, candidate.train.eval_every) == (6, 3)
    assert candidate.student.hidden == 8 and candidate.search == Recipe().search


def test_cli_refuses_a_bad_space_budget_and_target_in_one_line(tmp_path: Path, data: Path) -> None:
    from tests.test_cli import cli

    recipe = tmp_path / "r.yaml"
    recipe.write_text("search:\n  kinds:\n    gru: {}\n")
    ok = cli("search", "--teacher", "t", "--out", str(tmp_path / "s"), "--data", str(data),
             "--dry-run", env={"COLUMNS": "300"})  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "kind bilstm: student.hidden [150, 300]" in ok.stdout
    assert "unknown until trials run" in ok.stdout and "128 distinct" in ok.stdout
    for extra, expected in [
        (["--recipe", str(recipe)], "search.kinds.gru: unknown student kind 'gru'"),
        (["--budget", "soon"], "--budget 'soon': write a duration"),
        (["--target", "cuda"], "cuda is not searched yet"),
    ]:
        done = cli("search", "--teacher", "t", "--out", str(tmp_path / "s"), "--data", str(data),
                   *extra, "--dry-run")  # fmt: skip
        code, err = done.returncode, done.stderr
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and expected in lines[0], err


def test_a_tiny_search_runs_resumes_and_ships(
    tiny_teacher_dir: Path, data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "search"
    recipe = tiny_recipe(data)
    started = time.monotonic()
    paths = search(str(tiny_teacher_dir), recipe, out, FAST, max_drop=5.0, budget_s=600,
                   max_trials=3)  # fmt: skip
    assert time.monotonic() - started < 600
    summary = json.loads(paths["json"].read_text())
    assert len(summary["rows"]) == 3
    finished = [r for r in summary["rows"] if r["outcome"]]
    assert finished, summary["rows"]
    for r in finished:
        o = r["outcome"]
        assert 0 <= o["dev_accuracy"] <= 1 and o["speed"]["vs_teacher"] > 0
        assert o["drop"] == pytest.approx(100 * (summary["teacher_accuracy"] - o["dev_accuracy"]),
                                          abs=1e-3)  # fmt: skip
    # a proposal repeating a finished candidate reuses it and is not counted as a result
    numbers = {r["number"]: r for r in summary["rows"]}
    for r in summary["rows"]:
        if r["repeat_of"] is not None:
            assert r["state"] == "PRUNED" and r["outcome"] is None
            assert numbers[r["repeat_of"]]["outcome"] is not None
    # each kind is judged at its rungs against its own kind only
    names = set(optuna.get_all_study_names(open_storage(None, out)))
    assert {f"{RUNGS}-{r['kind']}" for r in summary["rows"]} <= names
    chosen = summary["choice"]["number"]
    shipped = summary["shipped"]
    assert shipped["trial"] == chosen and shipped["speedup"] > 0
    best = Path(shipped["folder"])
    state = json.loads((best / "state.json").read_text())["stages"]
    # the shipped folder is an ordinary compress run: its files passed the gates
    assert state["export"]["parity"]["passed"] if "parity" in state["export"] else True
    assert state["quantize"]["path"] and (best / "report.html").is_file()
    assert shipped["drop"] == pytest.approx(
        100 * (state["evaluate"]["dev_accuracy"]["teacher"] - shipped["dev_accuracy"]), abs=1e-3
    )
    html = paths["html"].read_text()
    assert "Pareto front" in html and "data:image/png;base64," in html
    # --dry-run's cost line reads the durations the trials measured
    assert "mean trial so far" in plan(recipe, FAST, 600, None, out)["cost"]
    # the same files estimated on an ARM profile: a 1-2 layer student beats the 4-layer teacher
    teacher_files = json.loads((out / "state.json").read_text())["stages"]["teacher_files"]
    arm = SearchTarget.parse("arm:cortex-a55", threads=4, batch=1, seq_len="64")
    speed = measure_speed(arm, teacher_dir=tiny_teacher_dir,
                          teacher_onnx=Path(teacher_files["onnx"]),
                          teacher_int8=Path(teacher_files["int8"]["path"]),
                          candidate_dir=best / "model", candidate=Path(state["quantize"]["path"]),
                          lengths=None)  # fmt: skip
    assert speed.mode == "estimated" and speed.vs_teacher > 1 and speed.vs_teacher_int8

    # resuming runs further trials without repeating the finished ones
    study = optuna.load_study(study_name=STUDY, storage=open_storage(None, out))
    before = {t.number for t in study.trials if t.state.is_finished()}
    paths = search(str(tiny_teacher_dir), recipe, out, FAST, max_drop=5.0, budget_s=600,
                   max_trials=1, resume=True, ship=False)  # fmt: skip
    study = optuna.load_study(study_name=STUDY, storage=open_storage(None, out))
    assert before < {t.number for t in study.trials if t.state.is_finished()}
    assert len(study.trials) == 4


def test_the_budget_stops_a_training_candidate(
    tiny_teacher_dir: Path, data: Path, tmp_path: Path
) -> None:
    # evaluations every 10 steps of a 100,000-step trial: only the budget can end it
    recipe = tiny_recipe(data, **{"search.trial_steps": 100_000, "search.rungs": 3,
                                  "search.reduction_factor": 100})  # fmt: skip
    teacher_run = tmp_path / "teacher_run"  # a finetune run folder, as users pass it
    shutil.copytree(tiny_teacher_dir, teacher_run / "model")
    with pytest.raises(UserError, match="no candidate finished within the budget"):
        search(str(teacher_run), recipe, tmp_path / "s", FAST, max_drop=1.0, budget_s=12)
    summary = json.loads((tmp_path / "s" / "search.json").read_text())
    assert [r["state"] for r in summary["rows"]] == ["PRUNED"]
    assert "budget ran out" in summary["rows"][0]["stopped"]


def cli_worker(teacher: Path, recipe: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "compressor", "search", "--teacher", str(teacher), "--out",
         str(out), "--recipe", str(recipe), "--threads", "1", "--seq-len", "16", "--iters", "3",
         "--max-drop", "5", "--no-ship", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip


def write_recipe(tmp_path: Path, data: Path, **more: object) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(tiny_recipe(data, **more).to_yaml())
    return path


def test_two_workers_share_one_journal_file(
    tiny_teacher_dir: Path, data: Path, tmp_path: Path
) -> None:
    recipe = write_recipe(tmp_path, data)
    journal = tmp_path / "shared.journal"
    workers = [
        cli_worker(
            tiny_teacher_dir,
            recipe,
            tmp_path / f"w{i}",
            "--storage",
            str(journal),
            "--max-trials",
            "2",
        )
        for i in range(2)
    ]
    for worker in workers:
        output, _ = worker.communicate(timeout=600)
        assert worker.returncode == 0, output
    study = optuna.load_study(study_name=STUDY, storage=open_storage(str(journal), tmp_path))
    assert len(study.trials) == 4
    for t in study.trials:  # finished, or a repeat of a candidate this worker finished
        assert t.state == TrialState.COMPLETE or "repeat_of" in t.user_attrs, t
    owners = {str(t.user_attrs["worker"]).rpartition(":")[2] for t in study.trials}
    assert owners == {str(w.pid) for w in workers}


def test_a_killed_search_resumes_its_cut_off_candidate(
    tiny_teacher_dir: Path, data: Path, tmp_path: Path
) -> None:
    # one long candidate (checkpoints every 10 steps) so the kill lands mid-training
    more = {
        "search.kinds": {"transformer": {"space": {"student.layers": [1]}}},
        "search.trial_steps": 100_000,
        "search.rungs": 4,
        "search.reduction_factor": 10,
    }
    recipe = write_recipe(tmp_path, data, **more)  # fmt: skip
    out = tmp_path / "s"
    worker = cli_worker(tiny_teacher_dir, recipe, out, "--max-trials", "1")
    checkpoints = out / "trials"
    deadline = time.monotonic() + 300
    while not list(checkpoints.glob("*/training/checkpoints/step-*")):
        assert worker.poll() is None, worker.communicate()[0]
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.5)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    cut = next(checkpoints.glob("*/training/checkpoints/step-*"))
    folder, step = cut.parents[2], int(cut.name.removeprefix("step-"))

    # resumed (for 12 s): the retry finds the same folder and continues from its checkpoint
    with pytest.raises(UserError, match="no candidate finished"):
        search(str(tiny_teacher_dir), tiny_recipe(data, **more), out, FAST, max_drop=5.0,
               budget_s=12, max_trials=1, resume=True, ship=False)  # fmt: skip
    study = optuna.load_study(study_name=STUDY, storage=open_storage(None, out))
    first, retry = study.trials
    assert first.state == TrialState.FAIL
    assert retry.user_attrs["retry_of"] == first.number and retry.params == first.params
    assert "budget ran out" in retry.user_attrs["stopped"]
    rungs = optuna.load_study(study_name=f"{RUNGS}-transformer", storage=open_storage(None, out))
    reported = rungs.trials[retry.user_attrs["twin"]].intermediate_values
    assert reported and min(reported) > step >= 10  # no step before the checkpoint again
    assert json.loads((folder / "state.json").read_text())["kind"] == "compress"


def test_workers_of_one_machine_share_its_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each live local worker with a running trial takes an equal share of the cores; dead
    workers and other machines' do not count."""
    import socket

    import torch

    from compressor.search.study import WORKER, local_workers, share_cores, worker_id

    study = optuna.create_study(directions=["minimize", "maximize"])
    host = socket.gethostname()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        for owner in (worker_id(), f"{host}:{other.pid}", f"{host}:{dead.pid}", "elsewhere:1"):
            study.ask().set_user_attr(WORKER, owner)
        assert local_workers(study) == 2
        monkeypatch.setattr(os, "cpu_count", lambda: 8)
        before = torch.get_num_threads()
        try:
            assert share_cores(study) == 4 and torch.get_num_threads() == 4
        finally:
            torch.set_num_threads(before)
    finally:
        other.kill()
        other.wait()
    assert local_workers(study) == 1  # the other worker is gone: this one takes every core
