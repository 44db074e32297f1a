"""Plumbing for Chapter 5's multi-worker programs: data, serving tasks, running and checking them.

The programs themselves (the MultiWorkerMirrored worker, the parameter-server coordinator) are
what the learner writes; their reference versions are `scalelab.answers.ch05.mwms_worker` and
`ps_coordinator`. This module runs one on a local cluster (`scalelab.processes.cluster`), kills
and restarts a worker when asked, and turns what the tasks returned into checks and tables.
(`scalelab cluster train mwms|ps` runs a reference program as one task, as the Kubernetes examples
in k8s/ do.) Importing this module never imports TensorFlow.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from scalelab.processes.cluster import Cluster, ClusterError, TaskResult, start_cluster

_DEVICE = re.compile(r"/job:(\w+)/(?:replica:\d+/)?task:(\d+)")
_RUNS: dict[str, dict[str, TaskResult]] = {}  # cluster runs already made, by program and settings


def digits() -> tuple[np.ndarray, np.ndarray]:
    """The digits training images as rows of 64 floats in 0..1, and their labels."""
    from scalelab import data

    split = data.load("digits")
    return data.scale(split.x_train).reshape(len(split.x_train), -1), split.y_train


def serve_unless_coordinator() -> None:
    """In a worker or ps task of a parameter-server cluster, serve until stopped; in the chief
    (the coordinator), return at once."""
    import tensorflow as tf

    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    if resolver.task_type in ("worker", "ps"):
        server = tf.distribute.Server(
            resolver.cluster_spec(),
            job_name=resolver.task_type,
            task_index=resolver.task_id,
            protocol="grpc",
            start=True,
        )
        print(f"{resolver.task_type}:{resolver.task_id} serving on {server.target}", flush=True)
        server.join()  # never returns: the cluster stops this process when the chief is done


def task_of(device: str) -> str:
    """The task a device string names: '/job:ps/replica:0/task:1/device:CPU:0' -> 'ps:1'."""
    match = _DEVICE.search(device)
    return f"{match[1]}:{match[2]}" if match else "this process"


def digest(weights: Any) -> str:
    """A short fingerprint of a list of weight arrays (equal on workers holding the same model)."""
    arrays = [np.asarray(w, dtype=np.float32) for w in weights]
    return hashlib.sha256(b"".join(a.tobytes() for a in arrays)).hexdigest()[:12]


def run_mwms(
    program: Callable[..., Any],
    *,
    workers: int = 2,
    epochs: int = 2,
    steps_per_epoch: int = 10,
    global_batch: int = 64,
    kill: bool = False,
    timeout: float = 150.0,
) -> dict[str, TaskResult]:
    """Run a MultiWorkerMirrored worker program on `workers` local tasks and return how each ended.

    Every task calls `program(epochs, steps_per_epoch, global_batch, checkpoint_dir, pause)`
    with one shared, new checkpoint folder. With `kill`, worker 1 is killed as soon as the
    first checkpoint is written (each task pauses 2 s after each epoch) and started again; a
    task that then fails is restarted up to twice. The same program with the same settings
    is run once per session: a second call returns the first run's results.
    """
    kwargs: dict[str, Any] = {
        "epochs": epochs,
        "steps_per_epoch": steps_per_epoch,
        "global_batch": global_batch,
    }
    key = json.dumps([_source(program), kwargs, workers, kill])
    if key in _RUNS:
        return _RUNS[key]
    checkpoints = Path(tempfile.mkdtemp(prefix="mwms-"))
    kwargs |= {"checkpoint_dir": str(checkpoints / "chief"), "pause": 2.0 if kill else 0.0}
    with start_cluster(
        program,
        kwargs=kwargs,
        workers=workers,
        timeout=timeout,
        legacy_keras=True,  # tf.keras is tf_keras (fit with BackupAndRestore); keras is Keras 3
        max_restarts=2 if kill else 0,
        logdir=checkpoints / "logs",
    ) as cluster:
        if kill:
            _wait_for_checkpoint(cluster, checkpoints / "chief", timeout)
            cluster.restart("worker:1")  # SIGKILL, then start again: a lost, rescheduled machine
        results = cluster.wait()
    _RUNS[key] = results
    return results


def run_ps(
    program: Callable[..., Any],
    *,
    workers: int = 2,
    ps: int = 2,
    steps: int = 40,
    batch: int = 32,
    timeout: float = 150.0,
) -> dict[str, Any]:
    """Run a parameter-server coordinator program on a chief, `workers` workers and `ps` ps
    tasks (each calls `program(steps, batch)`); return the chief's result, with `placement`
    mapping each variable to the task holding it."""
    kwargs = {"steps": steps, "batch": batch}
    key = json.dumps([_source(program), kwargs, workers, ps])
    if key not in _RUNS:
        with start_cluster(
            program,
            kwargs=kwargs,
            workers=workers,
            ps=ps,
            chief=True,
            legacy_keras=True,
            timeout=timeout,
        ) as cluster:
            _RUNS[key] = cluster.wait()
    chief = dict(_RUNS[key]["chief:0"].result or {})
    variables = chief.get("variables") or {}
    chief["placement"] = {str(name): task_of(str(device)) for name, device in variables.items()}
    return chief


def summary(results: Mapping[str, TaskResult]) -> list[dict[str, Any]]:
    """One row per task of a MultiWorkerMirrored run: restarts, resumed epoch, losses, weights."""
    rows = []
    for task, ended in results.items():
        result = ended.result or {}
        losses = [round(float(loss), 4) for loss in result.get("losses", [])]
        rows.append(
            {
                "task": task,
                "restarts": ended.restarts,
                "resumed at epoch": result.get("initial_epoch"),
                "losses": losses,
                "weights": digest(result["weights"]) if "weights" in result else None,
            }
        )
    return rows


def check_mwms(results: Mapping[str, TaskResult], epochs: int) -> None:
    """Fail with a learner-readable message unless every worker trained the same model for
    `epochs` epochs and its loss went down."""
    rows = summary(results)
    for row in rows:
        assert row["weights"], f"{row['task']} returned no 'weights' (model.get_weights())"
        assert len(row["losses"]) >= 1, f"{row['task']} returned no 'losses'"
    assert len({row["weights"] for row in rows}) == 1, (
        "the workers ended with different weights: did every worker train the same model "
        f"in strategy.scope(), with strategy.run? {rows}"
    )
    for row in rows:
        first, last = row["losses"][0], row["losses"][-1]
        if len(row["losses"]) > 1:
            assert last < first, f"{row['task']}'s loss did not go down: {row['losses']}"
        ran = len(row["losses"]) + (row["resumed at epoch"] or 0)
        assert ran == epochs, f"{row['task']} trained {ran} epochs, not {epochs}: {row}"


def _wait_for_checkpoint(cluster: Cluster, folder: Path, timeout: float) -> None:
    """Wait until a checkpoint index (a file named `checkpoint`) appears under `folder`."""
    deadline = time.monotonic() + timeout
    while not any(folder.rglob("checkpoint")):
        ended = {task: r for task, r in cluster.results().items() if r.returncode is not None}
        if ended or time.monotonic() > deadline:
            cluster.stop()
            task, how = next(iter(ended.items())) if ended else ("worker:0", None)
            raise ClusterError(
                f"{task} {'ended' if how else 'ran'} without writing a checkpoint into "
                f"checkpoint_dir ({folder}). Last lines of its log:\n"
                + "\n".join(
                    f"    | {line}" for line in cluster.results()[task].log_tail.splitlines()
                ),
                task,
            )
        time.sleep(0.1)


def _source(program: Callable[..., Any]) -> str:
    """The program's source, or its qualified name when it has none."""
    try:
        return inspect.getsource(program)
    except (OSError, TypeError):
        return f"{program.__module__}.{program.__qualname__}"
