"""Real tf.distribute clusters on localhost, one process per task.

Each test starts one cluster and checks everything about it, so that `pytest -n 2` never starts
the same cluster twice. Measured here: MultiWorkerMirroredStrategy trains with a Keras 3 custom
loop and with tf_keras `fit` (Keras 3 `fit` fails), BackupAndRestore resumes after a worker is
lost, and ParameterServerStrategy shards variables across ps tasks with tf_keras `fit`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scalelab.cluster import ClusterError, start_cluster

from .conftest import alive, pids

TIMEOUT = 240  # seconds per cluster: generous, for 2 busy cores
STEPS = 20


def train_args(strategy: str, *options: str, epochs: int = 2) -> list[str]:
    return ["train", strategy, f"--epochs={epochs}", f"--steps-per-epoch={STEPS}", *options]


def test_mwms_keras3_custom_loop_trains_and_both_workers_end_with_identical_weights(
    tmp_path: Path,
):
    with start_cluster(
        "scalelab.cluster", train_args("mwms", "--api=ctl"), timeout=TIMEOUT, logdir=tmp_path
    ) as cluster:
        first, second = (task.result for task in cluster.wait().values())
    for result in (first, second):
        assert result["keras"].startswith("3.") and result["api"] == "ctl"
        assert (result["replicas"], result["workers"], result["global_batch"]) == (2, 2, 64)
        assert result["steps"] == 2 * STEPS and result["steps_per_s"] > 0
        assert result["loss"] < 2.0  # from ln(10) = 2.3 for a random guess
    assert first["weights_digest"] == second["weights_digest"]
    assert (first["loss"], first["accuracy"]) == (second["loss"], second["accuracy"])


def test_keras3_fit_under_mwms_fails_with_per_replica_error_and_leaves_no_task(tmp_path: Path):
    cluster = start_cluster(
        "scalelab.cluster", train_args("mwms", "--api=fit"), timeout=TIMEOUT, logdir=tmp_path
    )
    with pytest.raises(ClusterError, match=r"exited with code 1") as failure:
        cluster.wait()
    assert failure.value.task in ("worker:0", "worker:1")
    assert "ValueError: Attempt to convert a value (PerReplica" in str(failure.value)
    assert alive(pids(cluster)) == []


def test_worker_killed_mid_training_restarts_and_both_resume_from_the_last_backup(
    tmp_path: Path,
):
    epochs = 4
    args = train_args(
        "mwms", "--api=fit", f"--backup-dir={tmp_path / 'backup'}", "--pause=1", epochs=epochs
    )
    with start_cluster(
        "scalelab.cluster",
        args,
        legacy_keras=True,
        timeout=TIMEOUT,
        max_restarts=2,
        logdir=tmp_path / "logs",
    ) as cluster:
        # worker:0 is the chief: its checkpoint of epoch 1 is written before it logs this line.
        cluster.wait_for_output("worker:0", "epoch 1 done")
        cluster.restart("worker:1")  # SIGKILL, then start again: a lost, rescheduled machine
        results = cluster.wait()  # worker:0 fails when worker:1 rejoins, and is restarted too
    for name, task in results.items():
        assert task.returncode == 0 and task.restarts >= 1, name
        assert task.result["keras"].startswith("2.") and task.result["api"] == "fit"
        assert 2 <= task.result["initial_epoch"] < epochs  # restored from a backup, not rerun
        assert task.result["epochs_run"] == epochs - task.result["initial_epoch"]
    # The kill came after the chief's backup of epoch 1 (worker:1 may not have logged that line
    # yet when it died: its print races the chief's).
    before_restart = results["worker:0"].log_path.read_text().split("restart 1 ===")[0]
    assert "epoch 1 done" in before_restart
    first, second = (task.result for task in results.values())
    assert first["weights_digest"] == second["weights_digest"] and first["loss"] == second["loss"]


def test_parameter_servers_hold_sharded_variables_and_chief_finishes_async_training(
    tmp_path: Path,
):
    with start_cluster(
        "scalelab.cluster",
        train_args("ps", "--api=fit"),
        workers=2,
        ps=2,
        chief=True,
        legacy_keras=True,
        timeout=TIMEOUT,
        logdir=tmp_path,
    ) as cluster:
        results = cluster.wait()
    chief = results["chief:0"]
    assert chief.returncode == 0 and chief.result["workers"] == 2
    assert chief.result["steps"] == 2 * STEPS and chief.result["loss"] < 2.0
    placement = chief.result["variables"]
    assert set(placement.values()) == {"ps:0", "ps:1"}
    kernels = {name: task for name, task in placement.items() if "/kernel/part_" in name}
    assert len(kernels) == 4 and set(kernels.values()) == {"ps:0", "ps:1"}  # 2 layers x 2 shards
    servers = [task for name, task in results.items() if name != "chief:0"]
    assert len(servers) == 4 and all(task.returncode < 0 for task in servers)  # stopped by us
    assert alive(pids(cluster)) == []
