"""The distribution chapter's training program: a digits classifier under a tf.distribute strategy.

`train()` runs inside one task of a cluster started by `scalelab.cluster` (as
`python -m scalelab.cluster train STRATEGY ...`, see main()) and returns what it measured. It
imports TensorFlow itself, after the launcher has set TF_CONFIG and TF_USE_LEGACY_KERAS
(tf.keras is then tf_keras, else Keras 3).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from scalelab import data, models

STRATEGIES = ("none", "mirrored", "central_storage", "mwms", "ps")
LOGICAL_CPUS = 2  # what mirrored and central_storage split this machine's CPU into
SEED = 42


@dataclass(frozen=True)
class _Schedule:
    """How a task trains: global batch, epochs, steps per epoch, seconds of pause after each."""

    global_batch: int
    epochs: int
    steps_per_epoch: int
    pause: float


def train(
    strategy: str,
    *,
    api: str = "ctl",
    epochs: int = 2,
    steps_per_epoch: int = 20,
    global_batch: int = 64,
    backup_dir: str | None = None,
    pause: float = 0.0,
) -> dict[str, Any]:
    """Train with `strategy` through Keras `fit` or a custom loop (`ctl`); return the measurements.

    With "ps", only the chief trains (a tf_keras `fit` coordinator); worker and ps tasks serve
    until the launcher stops them. `backup_dir` adds BackupAndRestore (fit), `pause` sleeps
    after each epoch so a demo can kill a task mid-run.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"Unknown strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}.")
    if api not in ("ctl", "fit"):
        raise ValueError(f"api must be 'ctl' or 'fit', not {api!r}.")
    if backup_dir and api != "fit":
        raise ValueError("backup_dir needs api='fit' (BackupAndRestore is a Keras callback).")
    if strategy == "ps" and (api != "fit" or not _legacy_keras()):
        raise ValueError(
            "ps trains with tf_keras fit here: use api='fit' and TF_USE_LEGACY_KERAS=1 "
            "(start_cluster(..., legacy_keras=True)); Keras 3 fit does not support it."
        )
    import tensorflow as tf

    distribution = _make_strategy(tf, strategy)  # before any other TensorFlow op
    keras = _keras()
    keras.utils.set_random_seed(SEED)
    digits = data.load("digits")
    with distribution.scope():
        model = models.build_classifier(
            (digits.x_train[0].size,), digits.n_classes, hidden=64, logits=True, api=keras
        )
    schedule = _Schedule(global_batch, epochs, steps_per_epoch, pause)
    if api == "fit":
        history, seconds = _fit(tf, distribution, model, schedule, backup_dir)
    else:
        history, seconds = _custom_loop(tf, distribution, model, schedule)
    timed_epochs = max(1, len(seconds) - 1)  # the first epoch also traces and warms up
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    return {
        "strategy": strategy,
        "api": api,
        "keras": keras.__version__,
        "task": tf_config.get("task"),
        "replicas": distribution.num_replicas_in_sync,
        "workers": len(tf_config.get("cluster", {}).get("worker", [])),
        "global_batch": global_batch,
        "initial_epoch": history["initial_epoch"],
        "epochs_run": len(seconds),
        "steps": len(seconds) * steps_per_epoch,
        "steps_per_s": round(timed_epochs * steps_per_epoch / sum(seconds[-timed_epochs:]), 1),
        "loss": history["loss"],
        "accuracy": history["accuracy"],
        "weights_digest": _digest(model),
        "variables": _placement(tf, model) if strategy == "ps" else None,
    }


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m scalelab.cluster train STRATEGY [...]`: train this part, save the result."""
    from scalelab.processes import write_result

    parser = argparse.ArgumentParser(prog="python -m scalelab.cluster train", description=__doc__)
    parser.add_argument("strategy", choices=STRATEGIES)
    parser.add_argument("--api", choices=("ctl", "fit"), default="ctl")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps-per-epoch", type=int, default=20)
    parser.add_argument("--global-batch", type=int, default=64)
    parser.add_argument("--backup-dir", help="BackupAndRestore folder (fit): resume after a crash")
    parser.add_argument(
        "--pause", type=float, default=0.0, help="seconds to sleep after each epoch"
    )
    options = parser.parse_args(argv)
    result = train(
        options.strategy,
        api=options.api,
        epochs=options.epochs,
        steps_per_epoch=options.steps_per_epoch,
        global_batch=options.global_batch,
        backup_dir=options.backup_dir,
        pause=options.pause,
    )
    write_result(result)


def _legacy_keras() -> bool:
    """Whether TensorFlow's tf.keras is tf_keras in this process (it reads the same variable)."""
    return os.environ.get("TF_USE_LEGACY_KERAS", "") in ("1", "true", "True")


def _keras() -> Any:
    """tf_keras when TF_USE_LEGACY_KERAS is set (tf.keras is then tf_keras too), else Keras 3."""
    if _legacy_keras():
        import tf_keras

        return tf_keras
    import keras

    return keras


def _make_strategy(tf: Any, name: str) -> Any:
    if name in ("mirrored", "central_storage"):
        (cpu,) = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * LOGICAL_CPUS
        )
        devices = [f"/cpu:{i}" for i in range(LOGICAL_CPUS)]
        if name == "mirrored":
            return tf.distribute.MirroredStrategy(devices)
        return tf.distribute.experimental.CentralStorageStrategy(devices, "/cpu:0")
    if name == "mwms":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "ps":
        return _parameter_server_strategy(tf)
    return tf.distribute.get_strategy()


def _parameter_server_strategy(tf: Any) -> Any:
    """The chief's ParameterServerStrategy; in a worker or ps task, serve until killed."""
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
        server.join()  # never returns: the chief's cluster stops this process
    shards = len(resolver.cluster_spec().as_dict()["ps"])
    partitioner = tf.distribute.experimental.partitioners.MinSizePartitioner(
        min_shard_bytes=1024, max_shards=shards
    )
    return tf.distribute.ParameterServerStrategy(resolver, variable_partitioner=partitioner)


def _digits() -> tuple[np.ndarray, np.ndarray]:
    """The digits training images as rows of 64 floats in 0..1 (short in a task's error log),
    and their labels."""
    digits = data.load("digits")
    return data.scale(digits.x_train).reshape(len(digits.x_train), -1), digits.y_train


def _dataset(tf: Any, batch: int) -> Any:
    """Shuffled, repeated batches of digits, sharded by element across workers."""
    x, y = _digits()
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=SEED).repeat()
    return dataset.batch(batch, drop_remainder=True).with_options(options)


def _fit(
    tf: Any,
    distribution: Any,
    model: Any,
    schedule: _Schedule,
    backup_dir: str | None,
) -> tuple[dict[str, Any], list[float]]:
    keras = _keras()
    clock = _epoch_clock(keras, schedule.pause)
    callbacks = [keras.callbacks.BackupAndRestore(backup_dir)] if backup_dir else []
    with distribution.scope():
        if isinstance(distribution, tf.distribute.ParameterServerStrategy):
            # tf_keras only: a legacy optimizer, a DatasetCreator, several steps per RPC.
            optimizer, execution = keras.optimizers.legacy.SGD(0.1), schedule.steps_per_epoch
            batches = keras.utils.experimental.DatasetCreator(
                lambda context: _ps_input(tf, context, schedule.global_batch)
            )
        else:
            optimizer, execution = keras.optimizers.SGD(0.1), 1
            batches = _dataset(tf, schedule.global_batch)
        model.compile(
            optimizer,
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
            steps_per_execution=execution,
        )
    history = model.fit(
        batches,
        epochs=schedule.epochs,
        steps_per_epoch=schedule.steps_per_epoch,
        callbacks=[*callbacks, clock],  # the clock's pause comes after the backup is written
        verbose=0,
    ).history
    return {
        "initial_epoch": clock.initial_epoch,
        "loss": round(float(history["loss"][-1]), 6),
        "accuracy": round(float(history["accuracy"][-1]), 6),
    }, clock.seconds


def _ps_input(tf: Any, context: Any, global_batch: int) -> Any:
    """Each worker's input pipeline for ParameterServerStrategy (a DatasetCreator function)."""
    x, y = _digits()
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    dataset = dataset.shard(context.num_input_pipelines, context.input_pipeline_id)
    dataset = dataset.shuffle(len(x), seed=SEED).repeat()
    return dataset.batch(context.get_per_replica_batch_size(global_batch)).prefetch(2)


def _custom_loop(
    tf: Any,
    distribution: Any,
    model: Any,
    schedule: _Schedule,
) -> tuple[dict[str, Any], list[float]]:
    keras = _keras()
    losses = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")
    with distribution.scope():
        optimizer = keras.optimizers.SGD(0.1)
    batches = iter(
        distribution.experimental_distribute_dataset(_dataset(tf, schedule.global_batch))
    )

    def replica_step(x: Any, y: Any) -> tuple[Any, Any]:
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.nn.compute_average_loss(
                losses(y, logits), global_batch_size=schedule.global_batch
            )
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        correct = tf.reduce_sum(tf.cast(tf.argmax(logits, 1) == y, tf.float32))
        return loss, correct

    @tf.function  # type: ignore[untyped-decorator]  # TensorFlow has no type hints
    def step() -> tuple[Any, Any]:
        loss, correct = distribution.run(replica_step, args=next(batches))
        return (
            distribution.reduce("SUM", loss, axis=None),
            distribution.reduce("SUM", correct, axis=None),
        )

    seconds = []
    for epoch in range(schedule.epochs):
        start, loss, correct = time.perf_counter(), 0.0, 0.0
        for _ in range(schedule.steps_per_epoch):
            step_loss, step_correct = step()
            loss, correct = loss + float(step_loss), correct + float(step_correct)
        seconds.append(time.perf_counter() - start)
        print(f"epoch {epoch} done, loss {loss / schedule.steps_per_epoch:.4f}", flush=True)
        time.sleep(schedule.pause if epoch + 1 < schedule.epochs else 0)
    return {
        "initial_epoch": 0,
        "loss": round(loss / schedule.steps_per_epoch, 6),
        "accuracy": round(correct / (schedule.steps_per_epoch * schedule.global_batch), 6),
    }, seconds


def _epoch_clock(keras: Any, pause: float) -> Any:
    """A Keras callback that times epochs, logs their end, and remembers the first one run."""

    class EpochClock(keras.callbacks.Callback):  # type: ignore[misc]  # Keras has no type hints
        initial_epoch: int | None = None
        seconds: list[float]

        def on_train_begin(self, logs: Any = None) -> None:
            self.seconds = []

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            if self.initial_epoch is None:
                self.initial_epoch = epoch
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.seconds.append(time.perf_counter() - self.start)
            print(f"epoch {epoch} done, loss {logs['loss']:.4f}", flush=True)
            time.sleep(pause if epoch + 1 < self.params["epochs"] else 0)

    return EpochClock()


def _digest(model: Any) -> str:
    """A short fingerprint of every weight, equal on workers that hold the same model."""
    weights = b"".join(np.asarray(w).tobytes() for w in model.get_weights())
    return hashlib.sha256(weights).hexdigest()[:16]


def _placement(tf: Any, model: Any) -> dict[str, str]:
    """Which task holds each variable, e.g. {'dense/kernel/part_0': 'ps:1'} (shards are parts)."""
    devices = {
        v.name.removesuffix(":0"): tf.DeviceSpec.from_string(v.device) for v in model.variables
    }
    return {name: f"{device.job}:{device.task}" for name, device in devices.items()}
