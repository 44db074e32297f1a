"""Keras Tuner searches over the digits model, in one process or on a local cluster.

A distributed search is a chief (the oracle, a gRPC service) and workers (each running trials),
started by `scalelab.cluster` from their TF_CONFIG: `python -m scalelab.cluster tune ...`.
Every tuner writes a log of its trials (`trials-<tuner id>.jsonl`) in the search's folder, which
`trial_log` reads back. Importing this module never imports TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from scalelab import cluster, processes

TUNERS = ("random", "bayesian", "hyperband")
OBJECTIVE = "val_accuracy"
PROJECT = "search"  # the project folder inside each tuner's directory
SINGLE = "single"  # the tuner id of a search in one process
ORACLE_VARIABLES = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")


def build_model(hp: Any) -> Any:
    """The chapter's search space: a digits MLP with `layers` hidden layers of `units` each,
    dropout after each, and Adam at `learning_rate`; compiled, softmax probabilities out."""
    import keras

    units = hp.Int("units", 16, 128, step=16)
    layers = hp.Int("layers", 1, 3)
    dropout = hp.Float("dropout", 0.0, 0.5, step=0.1)
    learning_rate = hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")
    model = keras.Sequential([keras.Input((8, 8)), keras.layers.Flatten()])
    for _ in range(layers):
        model.add(keras.layers.Dense(units, activation="relu"))
        model.add(keras.layers.Dropout(dropout))
    model.add(keras.layers.Dense(10, activation="softmax"))
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def make_tuner(
    kind: str,
    directory: str | os.PathLike[str],
    *,
    max_trials: int,
    epochs: int,
    build: Callable[[Any], Any] = build_model,
    log_dir: str | os.PathLike[str] | None = None,
    overwrite: bool = True,
    seed: int = 0,
    announce: bool = False,
) -> Any:
    """A Keras Tuner of `kind` (random, bayesian, hyperband) maximising val_accuracy.

    Random and Bayesian run `max_trials` trials; Hyperband has no trial count, only `epochs` as
    its largest number of epochs per trial. Each trial's start and end go to `log_dir` (and are
    printed if `announce`, as a cluster task does for its log).
    """
    if kind not in TUNERS:
        raise ValueError(f"Unknown tuner {kind!r}: use one of {', '.join(TUNERS)}.")
    import keras_tuner

    base = {
        "random": keras_tuner.RandomSearch,
        "bayesian": keras_tuner.BayesianOptimization,
        "hyperband": keras_tuner.Hyperband,
    }[kind]
    budget: dict[str, Any] = (
        {"max_epochs": epochs, "factor": 3, "hyperband_iterations": 1}
        if kind == "hyperband"
        else {"max_trials": max_trials}
    )
    if kind == "bayesian":
        budget["num_initial_points"] = 2  # random trials before the Gaussian process takes over

    trial_logs = Path(log_dir or directory)

    class Logged(base):  # type: ignore[misc, valid-type]
        """The tuner, writing a line to its trial log when a trial starts and ends."""

        log_dir = trial_logs
        progress: Any = None  # a tqdm bar while search(progress=True) runs
        epochs_trained: ClassVar[dict[str, int]] = {}  # a new class per tuner

        def on_trial_begin(self, trial: Any) -> None:
            super().on_trial_begin(trial)
            _log_event(self.log_dir, self.tuner_id, trial, "start", announce=announce)

        def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> Any:
            histories = super().run_trial(trial, *args, **kwargs)
            self.epochs_trained[trial.trial_id] = sum(
                len(getattr(history, "history", {}).get("loss", [])) for history in histories
            )
            return histories

        def on_trial_end(self, trial: Any) -> None:
            super().on_trial_end(trial)  # reports the trial to the oracle, which scores it
            scored = self.oracle.get_trial(trial.trial_id)
            epochs = self.epochs_trained.pop(trial.trial_id, None)
            _log_event(self.log_dir, self.tuner_id, trial, "end", scored.score, epochs, announce)
            if self.progress is not None:
                self.progress.update()

    return Logged(
        build,
        objective=OBJECTIVE,
        seed=seed,
        directory=str(directory),
        project_name=PROJECT,
        overwrite=overwrite,
        **budget,
    )


def search(tuner: Any, epochs: int, *, progress: bool = False) -> list[dict[str, Any]]:
    """Run the tuner's search on the digits (validation split as the objective); its trial log."""
    from scalelab import data

    digits = data.load("digits")
    if progress:
        from tqdm.auto import tqdm

        tuner.progress = tqdm(total=getattr(tuner.oracle, "max_trials", None), unit="trial")
    try:
        with warnings.catch_warnings():
            # The Gaussian process of BayesianOptimization warns about its fit on so few trials.
            warnings.filterwarnings("ignore", module=r"sklearn\.gaussian_process")
            tuner.search(
                data.scale(digits.x_train),
                digits.y_train,
                validation_data=(data.scale(digits.x_valid), digits.y_valid),
                epochs=epochs,
                verbose=0,
            )
    finally:
        if tuner.progress is not None:
            tuner.progress.close()
            tuner.progress = None
    return trial_log(tuner.log_dir)


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
    for path in sorted((Path(directory) / "chief" / PROJECT).glob("trial_*/trial.json")):
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


def reload_tuner(directory: str | os.PathLike[str], kind: str, **budget: Any) -> Any:
    """The chief's tuner of a finished distributed search, with its oracle's trials reloaded."""
    tuner = make_tuner(kind, Path(directory) / "chief", overwrite=False, **budget)
    tuner.oracle.reload()
    return tuner


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
    *,
    kind: str = "random",
    workers: int = 2,
    max_trials: int = 6,
    epochs: int = 3,
    timeout: float = 180.0,
) -> cluster.Cluster:
    """Start a search on a local cluster: a chief running the oracle and `workers` tuners.

    The job ends when every worker has exited; the chief is then stopped unless it exited first
    (Keras Tuner's chief checks every 20 s whether it may exit; its oracle has saved every result).
    """
    args = ["tune", f"--tuner={kind}", f"--trials={max_trials}", f"--epochs={epochs}"]
    return cluster.start_cluster(
        "scalelab.cluster",
        [*args, f"--directory={Path(directory).resolve()}"],
        chief=True,
        workers=workers,
        timeout=timeout,
        finishers=("worker",),
        logdir=Path(directory) / "logs",
    )


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


def main(argv: Sequence[str] | None = None) -> None:
    """One task of a search: `python -m scalelab.cluster tune --directory D [--tuner ...]`.

    With a chief in TF_CONFIG, the chief runs the oracle and each worker asks it for trials;
    without one (or without TF_CONFIG), the task searches on its own.
    """
    parser = argparse.ArgumentParser(prog="python -m scalelab.cluster tune", description=__doc__)
    parser.add_argument("--directory", required=True, help="the search's folder (shared)")
    parser.add_argument("--tuner", choices=TUNERS, default="random")
    parser.add_argument("--trials", type=int, default=6, help="max trials (random, bayesian)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per trial (Hyperband: max)")
    options = parser.parse_args(argv)
    tuner_id, variables = oracle_environment(os.environ.get("TF_CONFIG"))
    for name in ORACLE_VARIABLES:
        os.environ.pop(name, None)
    os.environ.update(variables)  # before Keras Tuner reads them
    tuner = make_tuner(
        options.tuner,
        Path(options.directory) / tuner_id,
        max_trials=options.trials,
        epochs=options.epochs,
        log_dir=options.directory,
        announce=True,
    )
    print(f"scalelab.tuning: {tuner_id} searching ({options.tuner})", flush=True)
    runs = search(tuner, options.epochs)
    mine = [run for run in runs if run["worker"] == tuner_id]
    print(f"scalelab.tuning: {tuner_id} finished after {len(mine)} trial run(s)", flush=True)
    processes.write_result({"tuner_id": tuner_id, "trials": [run["trial"] for run in mine]})


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
