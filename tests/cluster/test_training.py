"""Real tf.distribute clusters on localhost, one process per task, running Chapter 5's reference
programs (scalelab.answers.ch05) and programs that fail the way a learner's might.

Each test starts its own clusters and checks everything about them, so that `pytest -n 2` never
starts the same cluster twice. Measured here: MultiWorkerMirroredStrategy trains with a Keras 3
custom loop (Keras 3 `fit` fails), a killed worker's restart resumes from the chief's checkpoint,
ParameterServerStrategy shards variables across ps tasks, and a program that crashes, hangs or
never connects is reported, naming its task with its log, within the cluster's deadline.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from scalelab.answers import ch05
from scalelab.processes.cluster import ClusterError, start_cluster
from scalelab.training import distribute

from .conftest import alive, pids

TIMEOUT = 240  # seconds per cluster: generous, for 2 busy cores
STEPS = 20


def test_mwms_reference_worker_trains_and_both_workers_end_with_identical_weights():
    results = distribute.run_mwms(
        ch05.mwms_worker, epochs=2, steps_per_epoch=STEPS, global_batch=64, timeout=TIMEOUT
    )
    distribute.check_mwms(results, epochs=2)
    for task in results.values():
        assert task.returncode == 0 and task.restarts == 0
        result = task.result or {}
        assert result["initial_epoch"] == 0 and len(result["seconds"]) == 2
        assert result["losses"][-1] < 2.0  # from ln(10) = 2.3 for a random guess


def test_killed_worker_restarts_and_both_resume_from_the_chiefs_checkpoint():
    results = distribute.run_mwms(
        ch05.mwms_worker, epochs=3, steps_per_epoch=STEPS, kill=True, timeout=TIMEOUT
    )
    distribute.check_mwms(results, epochs=3)
    for name, task in results.items():
        # worker:1 was killed; worker:0 fails when its peer vanishes, and is restarted too.
        assert task.returncode == 0 and task.restarts >= 1, name
        assert (task.result or {})["initial_epoch"] >= 1, name  # resumed, not rerun
        assert "=== scalelab.cluster: restart 1 ===" in task.log_path.read_text()


def _keras3_fit_worker() -> dict[str, object]:
    """Keras 3 `fit` under MultiWorkerMirroredStrategy (it fails in TF 2.21)."""
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    import keras

    from scalelab.training import distribute

    x, y = distribute.digits()
    with strategy.scope():
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)])
        model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    return {}


def test_keras3_fit_under_mwms_fails_with_per_replica_error_and_leaves_no_task(tmp_path: Path):
    cluster = start_cluster(_keras3_fit_worker, timeout=TIMEOUT, logdir=tmp_path)
    with pytest.raises(ClusterError, match=r"exited with code 1") as failure:
        cluster.wait()
    assert failure.value.task in ("worker:0", "worker:1")
    assert "ValueError: Attempt to convert a value (PerReplica" in str(failure.value)
    assert alive(pids(cluster)) == []


def test_parameter_servers_hold_sharded_variables_and_chief_finishes_async_training(
    tmp_path: Path,
):
    with start_cluster(
        ch05.ps_coordinator,
        kwargs={"steps": 40, "batch": 32},
        workers=2,
        ps=2,
        chief=True,
        legacy_keras=True,
        timeout=TIMEOUT,
        logdir=tmp_path,
    ) as cluster:
        results = cluster.wait()
    chief = results["chief:0"]
    assert chief.returncode == 0 and chief.result
    losses = chief.result["losses"]
    assert len(losses) == 40 and sum(losses[-10:]) < sum(losses[:10])
    placement = {name: distribute.task_of(d) for name, d in chief.result["variables"].items()}
    assert set(placement.values()) == {"ps:0", "ps:1"}
    kernels = {name: task for name, task in placement.items() if "/kernel/part_" in name}
    assert len(kernels) == 4 and set(kernels.values()) == {"ps:0", "ps:1"}  # 2 layers x 2 shards
    servers = [task for name, task in results.items() if name != "chief:0"]
    assert len(servers) == 4 and all(task.returncode < 0 for task in servers)  # stopped by us
    assert alive(pids(cluster)) == []


def _crashes(epochs: int, steps_per_epoch: int, global_batch: int, checkpoint_dir: str, pause=0.0):
    """A worker program whose second worker fails at once, like a typo in a learner's program."""
    import json
    import os

    if json.loads(os.environ["TF_CONFIG"])["task"]["index"] == 1:
        raise NameError("name 'stratgy' is not defined")
    import time

    time.sleep(600)


def _never_connects(
    epochs: int, steps_per_epoch: int, global_batch: int, checkpoint_dir: str, pause=0.0
):
    """Worker 0 waits for a peer that never creates its strategy (a learner's hang)."""
    import json
    import os
    import time

    if json.loads(os.environ["TF_CONFIG"])["task"]["index"] == 1:
        time.sleep(600)
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    print("connected", strategy.num_replicas_in_sync, flush=True)


def _never_checkpoints(
    epochs: int, steps_per_epoch: int, global_batch: int, checkpoint_dir: str, pause=0.0
):
    """A worker program that trains nothing and saves nothing."""
    print("nothing to save", flush=True)
    return {"losses": [2.3], "initial_epoch": 0, "weights": []}


@pytest.mark.parametrize(
    ("program", "kill", "task", "said"),
    [
        (_crashes, False, "worker:1", "NameError: name 'stratgy' is not defined"),
        (_never_connects, False, "worker:", "Timed out waiting for training to finish"),
        (_never_checkpoints, True, "worker:", "without writing a checkpoint into checkpoint_dir"),
    ],
    ids=["crashes", "never-connects", "never-checkpoints"],
)
def test_a_failing_worker_program_is_reported_with_its_task_and_log_within_the_deadline(
    program, kill, task, said
):
    timeout = 30
    began = time.monotonic()
    with pytest.raises(ClusterError) as failure:
        distribute.run_mwms(program, epochs=2, steps_per_epoch=2, kill=kill, timeout=timeout)
    assert time.monotonic() - began < timeout + 15  # the deadline, and the clean-up
    message = str(failure.value)
    assert (failure.value.task or "").startswith(task), message
    assert said in message and "| " in message  # the reason, and the task's log quoted
