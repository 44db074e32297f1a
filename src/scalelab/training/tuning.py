"""Plumbing around the Keras Tuner searches a learner writes: trial logs, a local cluster, tables.

The learner writes the search (`build_model`, `make_tuner`, `run_search`; the reference answers are
in `scalelab.answers.ch06`). `log_trials` makes any tuner write a log of its trials
(`trials-<tuner id>.jsonl`), which `trial_log` reads back. A distributed search is a chief (the
oracle, a gRPC service) and workers (each running trials), started by `start_search` with the
learner's functions shipped to every task. Importing this module never imports TensorFlow.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from scalelab.processes import cluster

TUNERS = ("random", "bayesian", "hyperband")
SINGLE = "single"  # the tuner id of a search in one process
ORACLE_VARIABLES = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")


class _Logged:
    """What log_trials mixes into a tuner: a line in its trial log when a trial starts and ends."""

    trial_log_dir: Path
    announce: bool
    search_ended: bool
    epochs_trained: dict[str, int]
    tuner_id: str
    oracle: Any

    def on_trial_begin(self, trial: Any) -> None:
        super().on_trial_begin(trial)  # type: ignore[misc]
        _log_event(self.trial_log_dir, self.tuner_id, trial, "start", announce=self.announce)

    def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> Any:
        histories = super().run_trial(trial, *args, **kwargs)  # type: ignore[misc]
        if isinstance(histories, list):  # one History per execution of the trial
            self.epochs_trained[trial.trial_id] = sum(
                len(getattr(history, "history", {}).get("loss", [])) for history in histories
            )
        return histories

    def on_trial_end(self, trial: Any) -> None:
        super().on_trial_end(trial)  # type: ignore[misc]  # reports the trial to the oracle
        scored = self.oracle.get_trial(trial.trial_id)
        epochs = self.epochs_trained.pop(trial.trial_id, None)
        _log_event(
            self.trial_log_dir, self.tuner_id, trial, "end", scored.score, epochs, self.announce
        )

    def on_search_end(self) -> None:
        super().on_search_end()  # type: ignore[misc]
        self.search_ended = True


def log_trials(tuner: Any, directory: str | os.PathLike[str], *, announce: bool = False) -> Any:
    """Make any Keras Tuner tuner log its trials to `directory`/trials-<tuner id>.jsonl; return it.

    The tuner keeps its class's behaviour: logging is mixed in (its class becomes a subclass that
    also writes the log), and each event is printed too if `announce` (a cluster task's log).
    """
    base = type(tuner)
    if not isinstance(tuner, _Logged):
        tuner.__class__ = type(f"Logged{base.__name__}", (_Logged, base), {})
    tuner.trial_log_dir = Path(directory)
    tuner.trial_log_dir.mkdir(parents=True, exist_ok=True)
    tuner.announce, tuner.search_ended, tuner.epochs_trained = announce, False, {}
    return tuner


def quiet_search_warnings() -> None:
    """Keep off stderr what a short search warns (a Gaussian process fit on few trials)."""
    warnings.filterwarnings("ignore", module=r"sklearn\.gaussian_process")


def trial_log(directory: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every trial run the tuners in `directory` logged, by start time: trial id, worker, start
    and end (seconds since the epoch), status, score, epochs trained. A run whose worker died
    has no end: status LOST, end None."""
    runs: list[dict[str, Any]] = []
    for path in sorted(Path(directory).glob("trials-*.jsonl")):
        open_runs: dict[str, dict[str, Any]] = {}
        for line in path.read_text().splitlines():
            event = json.loads(line)
            if event["event"] == "start":
                run = {"trial": event["trial"], "worker": event["worker"], "started": event["time"]}
                run |= {"ended": None, "status": "LOST", "score": None, "epochs": None}
                open_runs[event["trial"]] = run
                runs.append(run)
            elif event["trial"] in open_runs:
                run = open_runs.pop(event["trial"])
                run |= {key: event[key] for key in ("status", "score", "epochs")}
                run["ended"] = event["time"]
    return sorted(runs, key=lambda run: run["started"])


def oracle_view(directory: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The oracle's own record of each trial (from the chief's project folder): id, status,
    score and hyperparameters, with the workers that ran it (from the trial logs)."""
    workers: dict[str, list[str]] = {}
    for run in trial_log(directory):
        workers.setdefault(run["trial"], []).append(run["worker"])
    rows = []
    for path in sorted((Path(directory) / "chief").glob("*/trial_*/trial.json")):
        trial = json.loads(path.read_text())
        values = trial["hyperparameters"]["values"]
        rows.append(
            {
                "trial": trial["trial_id"],
                "status": trial["status"],
                "score": None if trial["score"] is None else round(trial["score"], 4),
                "run by": ", ".join(workers.get(trial["trial_id"], [])),
                **{name: rounded(value) for name, value in values.items()},
            }
        )
    return rows


def best_trial(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The hyperparameter values of the best-scored trial in the chief's record (highest score:
    the objective is maximised), without Hyperband's `tuner/` bookkeeping values."""
    trials = [
        json.loads(path.read_text())
        for path in (Path(directory) / "chief").glob("*/trial_*/trial.json")
    ]
    scored = [trial for trial in trials if trial["score"] is not None]
    if not scored:
        raise ValueError(f"No scored trial in {directory}/chief: did the search run?")
    best = max(scored, key=lambda trial: trial["score"])["hyperparameters"]["values"]
    return {name: value for name, value in best.items() if not name.startswith("tuner/")}


def parallel_fraction(runs: Sequence[dict[str, Any]]) -> float:
    """The share of a search's wall time (first start to last end) during which at least two
    trial runs were in progress at once."""
    edges = sorted(
        [(run["started"], 1) for run in runs if run["ended"] is not None]
        + [(run["ended"], -1) for run in runs if run["ended"] is not None]
    )
    if not edges:
        raise ValueError("No trial in this log ended: nothing to measure.")
    running, both, previous = 0, 0.0, edges[0][0]
    for time_point, step in edges:
        if running >= 2:
            both += time_point - previous
        running, previous = running + step, time_point
    return float(both / (edges[-1][0] - edges[0][0]))


def trials_per_minute(runs: Sequence[dict[str, Any]]) -> float:
    """Completed trials per minute of wall time, from the first start to the last end in `runs`."""
    ends = [run["ended"] for run in runs if run["ended"] is not None]
    if not ends:
        raise ValueError("No trial in this log ended: nothing to count.")
    minutes = (max(ends) - min(run["started"] for run in runs)) / 60
    return float(sum(run["status"] == "COMPLETED" for run in runs) / minutes)


def describe_space(hp: Any) -> list[dict[str, Any]]:
    """One row per hyperparameter a build function declared: name, kind, values, sampling."""
    rows = []
    for item in hp.space:
        config = item.get_config()
        if "values" in config:
            values = ", ".join(map(str, config["values"]))
        else:
            step = f" step {config['step']}" if config.get("step") else ""
            values = f"{config['min_value']} to {config['max_value']}{step}"
        kind = type(item).__name__
        rows.append(
            {
                "name": item.name,
                "kind": kind,
                "values": values,
                "sampling": config.get("sampling", ""),
            }
        )
    return rows


def summary(runs: dict[str, Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per search: trials, epochs trained, seconds (first start to last end), trials/min, best."""
    rows = []
    for name, log in runs.items():
        ended = [run for run in log if run["ended"] is not None]
        seconds = max(run["ended"] for run in ended) - min(run["started"] for run in log)
        rows.append(
            {
                "search": name,
                "trials": len(ended),
                "epochs trained": sum(run["epochs"] or 0 for run in ended),
                "seconds": round(seconds, 1),
                "trials/min": round(trials_per_minute(log), 1),
                "best val accuracy": round(max(run["score"] or 0.0 for run in ended), 4),
            }
        )
    return rows


def best_so_far(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each finished trial in order of ending: its number, seconds since the first start,
    and the best score so far (what the best-so-far plots draw)."""
    done = sorted((r for r in runs if r["ended"] is not None), key=lambda r: r["ended"])
    start = min((r["started"] for r in runs), default=0.0)
    best, rows = float("-inf"), []
    for number, run in enumerate(done, 1):
        best = max(best, run["score"] if run["score"] is not None else float("-inf"))
        rows.append({"trial": number, "seconds": run["ended"] - start, "best": best})
    return rows


def start_search(
    directory: str | os.PathLike[str],
    functions: Sequence[Callable[..., Any]],
    *,
    kind: str = "random",
    workers: int = 2,
    max_trials: int = 6,
    epochs: int = 3,
    timeout: float = 180.0,
) -> cluster.Cluster:
    """Start a search on a local cluster: a chief running the oracle and `workers` tuners.

    `functions` are `build_model(hp)`, `make_tuner(kind, build_model, directory, max_trials,
    epochs)` and `run_search(tuner, x, y, x_valid, y_valid, epochs)`: their sources are shipped
    to every task, which runs `search_task` with them. The folder is emptied first. The job ends
    when every worker has exited; the chief is then stopped unless it exited first (Keras
    Tuner's chief checks every 20 s whether it may exit; its oracle has saved every result).
    """
    by_name = {getattr(function, "__name__", ""): function for function in functions}
    missing = sorted({"build_model", "make_tuner", "run_search"} - set(by_name))
    if missing:
        raise ValueError(f"start_search needs functions named {', '.join(missing)}.")
    directory = Path(directory).resolve()
    shutil.rmtree(directory, ignore_errors=True)
    kwargs = {"kind": kind, "directory": str(directory), "max_trials": max_trials}
    return cluster.start_cluster(
        search_task,
        kwargs={**kwargs, "epochs": epochs},
        also=list(functions),
        chief=True,
        workers=workers,
        timeout=timeout,
        finishers=("worker",),
        logdir=directory / "logs",
    )


def search_task(
    kind: str, directory: str, max_trials: int, epochs: int, functions: str = "__main__"
) -> dict[str, Any]:
    """One task of a search, run on every task of start_search's cluster: the tuner that
    `functions` (a module: by default the program itself, where start_search wrote the learner's
    functions) builds, its trials logged, searching the digits; returns its trials and the best
    hyperparameters it saw. Shipped by source: everything it uses is imported here."""
    import importlib
    import os
    from pathlib import Path

    from scalelab import data
    from scalelab.training import tuning

    learner = importlib.import_module(functions)
    tuner_id, variables = tuning.oracle_environment(os.environ.get("TF_CONFIG"))
    for name in tuning.ORACLE_VARIABLES:
        os.environ.pop(name, None)
    os.environ.update(variables)  # before Keras Tuner reads them
    tuning.quiet_search_warnings()
    digits = data.load("digits")
    folder = str(Path(directory) / tuner_id)
    tuner = learner.make_tuner(kind, learner.build_model, folder, max_trials, epochs)
    tuning.log_trials(tuner, directory, announce=True)
    print(f"scalelab.tuning: {tuner_id} searching ({kind})", flush=True)
    x_train, x_valid = data.scale(digits.x_train), data.scale(digits.x_valid)
    try:
        best = learner.run_search(tuner, x_train, digits.y_train, x_valid, digits.y_valid, epochs)
    except Exception as error:  # asking a chief that has exited for the best trial
        if tuner_id == "chief" or not tuner.search_ended:
            raise
        print(f"scalelab.tuning: {tuner_id} searched, but no best trial: {error}", flush=True)
        best = None
    logged_as = tuner.tuner_id  # Keras Tuner's id: tuner_id, or "tuner0" when searching alone
    mine = [run["trial"] for run in tuning.trial_log(directory) if run["worker"] == logged_as]
    print(f"scalelab.tuning: {tuner_id} finished after {len(mine)} trial run(s)", flush=True)
    if best is not None and not isinstance(best, dict):
        best = dict(best.values)  # a HyperParameters object
    return {"tuner_id": tuner_id, "trials": mine, "best": best}


def kill_mid_trial(
    search: cluster.Cluster,
    directory: str | os.PathLike[str],
    seconds_in: float = 0.5,
    timeout: float = 120.0,
) -> tuple[str, dict[str, Any]]:
    """SIGKILL the first worker that is `seconds_in` seconds into a trial (worker 1 if both are);
    return its task name ('worker:1') and the trial run it lost."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = [r for r in trial_log(directory) if r["ended"] is None]
        ripe = [r for r in running if time.time() - r["started"] >= seconds_in]
        if ripe:
            run = max(ripe, key=lambda r: r["worker"])
            task = f"worker:{run['worker'].removeprefix('worker')}"
            search.kill(task)
            return task, run
        time.sleep(0.05)
    search.stop()
    raise cluster.ClusterError(
        f"No worker started a trial within {timeout:.0f} s: see {search.logdir}"
    )


def oracle_environment(tf_config: str | None) -> tuple[str, dict[str, str]]:
    """This task's tuner id, and the KERASTUNER_* variables that TF_CONFIG implies for it.

    The chief's address is the oracle's; the chief's id is "chief", worker i's "worker<i>".
    Without a chief in TF_CONFIG (or without TF_CONFIG) the task searches alone: no variables.
    """
    config = json.loads(tf_config) if tf_config else {}
    chief = config.get("cluster", {}).get("chief")
    if not chief:
        return SINGLE, {}
    task = config["task"]
    host, port = chief[0].rsplit(":", 1)
    tuner_id = "chief" if task["type"] == "chief" else f"{task['type']}{task['index']}"
    return tuner_id, {
        "KERASTUNER_TUNER_ID": tuner_id,
        "KERASTUNER_ORACLE_IP": "127.0.0.1" if host == "localhost" else host,
        "KERASTUNER_ORACLE_PORT": port,
    }


def _log_event(
    directory: str | os.PathLike[str],
    tuner_id: str,
    trial: Any,
    event: str,
    score: float | None = None,
    epochs: int | None = None,
    announce: bool = False,
) -> None:
    line = {
        "event": event,
        "trial": trial.trial_id,
        "worker": tuner_id,
        "time": time.time(),
        "status": trial.status,
        "score": score,
        "epochs": epochs,  # trained in this run (Hyperband resumes some trials from a checkpoint)
    }
    with open(Path(directory) / f"trials-{tuner_id}.jsonl", "a") as log:
        log.write(json.dumps(line) + "\n")
    if announce:
        print(f"scalelab.tuning: trial {trial.trial_id} {event} ({trial.status})", flush=True)


def rounded(value: Any) -> Any:
    """Hyperparameter values as a table shows them: floats to 2 significant digits."""
    return float(f"{value:.2g}") if isinstance(value, float) else value
