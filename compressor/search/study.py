"""The Optuna side: where the study lives, how a worker resumes it, and the loop that runs
candidates until the budget is spent.

Optuna prunes single-objective studies only (`Trial.report` raises NotImplementedError when
there are two objectives), and this search has two: accuracy drop and speed. So each trial
of the two-objective study has a twin in a one-objective "rungs" study of its student kind,
in the same storage; the twin receives the candidate's dev accuracy at every evaluation and
Optuna's own SuccessiveHalvingPruner (or HyperbandPruner) decides on it. One rungs study per
kind, because kinds learn at different speeds (their own learning rates and losses), so a
shared rung compares early learning speed across kinds: in a 25-minute search on the demo
teacher with one shared rung, every CNN candidate was stopped at step 13 or 39 at the
majority-class accuracy and none was ever scored. With a rung per kind, `make bench-search`
finishes CNN candidates (benchmarks/results/bench-search.md).
All studies live in the same file or database, so several workers share the rungs too.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from compressor.errors import UserError
from compressor.recipe import Recipe, SearchConfig
from compressor.search.space import candidate_recipe, suggest
from compressor.search.trial import Baseline, Outcome, run_candidate

STUDY = "compressor-search"
RUNGS = STUDY + "-rungs"
DIRECTIONS = ["minimize", "maximize"]  # accuracy drop in points, times faster
WORKER = "worker"
REPEAT_OF = "repeat_of"


def open_storage(url: str | None, out: Path) -> BaseStorage:
    """A database URL (sqlite:///..., postgresql://...) as Optuna's RDB storage; anything
    else is a journal file, by default `out/study.journal`: a file several local processes
    (or machines on one shared file system) can append to."""
    if url and "://" in url:
        try:
            return RDBStorage(url)
        except Exception as exc:  # SQLAlchemy's errors vary by driver
            raise UserError(f"--storage {url}: cannot open the database ({exc})") from None
    path = Path(url) if url else out / "study.journal"
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def pruner(cfg: SearchConfig) -> optuna.pruners.BasePruner:
    first, top = cfg.first_eval(), cfg.trial_steps
    if cfg.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=first, reduction_factor=cfg.reduction_factor
        )
    if cfg.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=first, max_resource=top, reduction_factor=cfg.reduction_factor
        )
    return optuna.pruners.NopPruner()


def open_study(storage: BaseStorage, cfg: SearchConfig) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(
        seed=cfg.seed, n_startup_trials=cfg.startup_trials, constant_liar=True
    )
    return optuna.create_study(
        storage=storage,
        study_name=STUDY,
        directions=DIRECTIONS,
        sampler=sampler,
        load_if_exists=True,
    )


class Rungs:
    """The one-objective twin studies, one per student kind, opened on first use."""

    def __init__(self, storage: BaseStorage, cfg: SearchConfig):
        self.storage, self.cfg = storage, cfg
        self.studies: dict[str, optuna.Study] = {}

    def study(self, kind: str) -> optuna.Study:
        if kind not in self.studies:
            self.studies[kind] = optuna.create_study(
                storage=self.storage,
                study_name=f"{RUNGS}-{kind}",
                direction="maximize",
                pruner=pruner(self.cfg),
                load_if_exists=True,
            )
        return self.studies[kind]


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _local_pid(owner: str) -> int | None:
    """The pid of a worker id of this machine, None for another machine's."""
    owner_host, _, pid = owner.rpartition(":")
    return int(pid) if owner_host == socket.gethostname() and pid.isdigit() else None


def local_workers(study: optuna.Study) -> int:
    """Live workers of this machine with a trial running, this one included."""
    owners = {worker_id()}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = str(trial.user_attrs.get(WORKER, ""))
        pid = _local_pid(owner)
        if pid is not None and _alive(pid):
            owners.add(owner)
    return len(owners)


def share_cores(study: optuna.Study) -> int:
    """Give this worker's training its share of the machine's cores and return it.

    Two workers on one machine that each run torch's thread pool over all cores oversubscribe
    it, and each waits on threads the other has descheduled. Each worker takes cores / local
    workers at the start of each trial, so a worker that started alone shrinks at its next
    trial.
    """
    import torch

    threads = max(1, (os.cpu_count() or 1) // local_workers(study))
    torch.set_num_threads(threads)
    return threads


def recover_killed(main: optuna.Study, rungs: Rungs) -> list[int]:
    """Trials a killed worker of this machine left running: failed, and their candidates
    queued again, so the next trial resumes the candidate's run folder where it stopped."""
    requeued = []
    for trial in main.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = _local_pid(str(trial.user_attrs.get(WORKER, "")))
        if pid is None or _alive(pid):
            continue
        main.tell(trial.number, state=TrialState.FAIL)
        twin, kind = trial.user_attrs.get("twin"), str(trial.params.get("kind"))
        if twin is not None and rungs.study(kind).trials[twin].state == TrialState.RUNNING:
            rungs.study(kind).tell(twin, state=TrialState.FAIL)
        main.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        requeued.append(trial.number)
    return requeued


UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_budget(text: str) -> float:
    """'90s', '60m', '1.5h' (a bare number is minutes) as seconds."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not found or float(found[1]) <= 0:
        raise UserError(f"--budget {text!r}: write a duration such as 90s, 60m or 1.5h")
    return float(found[1]) * UNITS[found[2] or "m"]


class Budget:
    """Wall-clock seconds this worker may spend; a candidate still training when they run out
    is stopped at its next evaluation."""

    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds
        self.spent = False

    def left(self) -> float:
        return max(0.0, self.deadline - time.monotonic())


def objective_for(
    recipe: Recipe,
    base: Baseline,
    rungs: Rungs,
    trials_dir: Path,
    budget: Budget,
) -> Callable[[optuna.Trial], tuple[float, float]]:
    cfg = recipe.search

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        kind, settings = suggest(trial, cfg)
        candidate = candidate_recipe(
            recipe, settings, steps=cfg.trial_steps, eval_every=cfg.first_eval()
        )
        kind_rungs = rungs.study(kind)
        twin = kind_rungs.ask()
        trial.set_user_attr(WORKER, worker_id())
        trial.set_user_attr("threads", share_cores(trial.study))
        trial.set_user_attr("twin", twin.number)
        trial.set_user_attr("settings", settings)

        def judge(step: int, accuracy: float) -> None:
            twin.report(accuracy, step)
            if budget.left() <= 0:
                budget.spent = True
                raise optuna.TrialPruned(f"the budget ran out at step {step}")
            if twin.should_prune():
                raise optuna.TrialPruned(
                    f"dev accuracy {accuracy:.4f} at step {step} is below its rung"
                )

        try:
            outcome = run_candidate(base, candidate, trials_dir, judge, trial.number)
            if outcome.trial != trial.number:
                # TPE keeps proposing a front point of a small categorical space; reusing it
                # costs nothing, but counted again it would crowd out the rest of the space
                trial.set_user_attr(REPEAT_OF, outcome.trial)
                raise optuna.TrialPruned(f"repeats trial {outcome.trial}")
        except optuna.TrialPruned as exc:
            trial.set_user_attr("stopped", str(exc))
            kind_rungs.tell(twin, state=TrialState.PRUNED)
            raise
        except BaseException:
            kind_rungs.tell(twin, state=TrialState.FAIL)
            raise
        kind_rungs.tell(twin, outcome.dev_accuracy)
        trial.set_user_attr("outcome", asdict(outcome))
        return outcome.drop, outcome.speedup

    return objective


def outcome_of(trial: optuna.trial.FrozenTrial) -> Outcome | None:
    found: dict[str, Any] | None = trial.user_attrs.get("outcome")
    return Outcome(**found) if found and trial.state == TrialState.COMPLETE else None
