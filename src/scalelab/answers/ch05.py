"""Reference answers to Chapter 5 (distribution strategies): gradients, a strategy's `fit`, and
the programs of a multi-worker job (the MultiWorkerMirrored worker, the parameter-server
coordinator), which `scalelab.training.distribute` runs on local clusters."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "average_gradients",
    "build_digits_model",
    "digits_training_data",
    "mwms_worker",
    "ps_coordinator",
    "train_under",
]


def average_gradients(per_replica: Sequence[Sequence[Any]]) -> list[Any]:
    """Element-wise mean over replicas of each variable's gradient (what an all-reduce computes)."""
    import tensorflow as tf

    return [tf.add_n(list(grads)) / len(grads) for grads in zip(*per_replica, strict=True)]


def digits_training_data() -> tuple[np.ndarray, np.ndarray]:
    """The chapter's training split: digits scaled to 0..1 and flattened to 64 floats, labels."""
    from scalelab import data

    digits = data.load("digits")
    return data.scale(digits.x_train).reshape(len(digits.x_train), -1), digits.y_train


def build_digits_model() -> Any:
    """The chapter's compiled digits classifier (call it inside a strategy's scope)."""
    import keras

    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10)]
    )
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def train_under(
    strategy: Any,
    per_replica_batch: int,
    epochs: int = 1,
    *,
    data: tuple[np.ndarray, np.ndarray] | None = None,
    build_model: Callable[[], Any] = build_digits_model,
) -> tuple[int, int, Any]:
    """Build the model in `strategy.scope()`, fit it with the global batch (per replica ×
    replicas); return (replicas, global batch, the History fit returned)."""
    x, y = digits_training_data() if data is None else data
    replicas = strategy.num_replicas_in_sync
    global_batch = per_replica_batch * replicas
    with strategy.scope():
        model = build_model()
    history = model.fit(x, y, batch_size=global_batch, epochs=epochs, verbose=0)
    return replicas, global_batch, history


def mwms_worker(
    epochs: int, steps_per_epoch: int, global_batch: int, checkpoint_dir: str, pause: float = 0.0
) -> dict[str, object]:
    """One worker of a MultiWorkerMirroredStrategy job (every task runs it): a custom loop on
    the digits that checkpoints each epoch and resumes from the last checkpoint."""
    import os
    import tempfile
    import time

    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()  # before any other TensorFlow op
    import keras

    from scalelab.training import distribute

    keras.utils.set_random_seed(42)
    with strategy.scope():
        model = keras.Sequential(
            [keras.Input((64,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)]
        )
        optimizer = keras.optimizers.SGD(0.1)
        optimizer.build(model.trainable_variables)
    x, y = distribute.digits()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=42).repeat()
    batches = iter(strategy.experimental_distribute_dataset(dataset.batch(global_batch)))
    per_example = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")

    def replica_step(images: object, labels: object) -> object:
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = tf.nn.compute_average_loss(
                per_example(labels, logits), global_batch_size=global_batch
            )
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    @tf.function  # type: ignore[untyped-decorator]  # TensorFlow has no type hints
    def train_step() -> object:
        per_replica = strategy.run(replica_step, args=next(batches))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    # Every worker saves (saving is collective); only the chief into checkpoint_dir.
    resolver = strategy.cluster_resolver
    chief = resolver.task_type in (None, "chief") or (
        resolver.task_type == "worker"
        and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict()
    )
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
    directory = checkpoint_dir if chief else tempfile.mkdtemp(dir=os.path.dirname(checkpoint_dir))
    manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=1)
    latest = tf.train.latest_checkpoint(checkpoint_dir)
    if latest:
        checkpoint.restore(latest)
    start = int(optimizer.iterations.numpy()) // steps_per_epoch
    losses, seconds = [], []
    for epoch in range(start, epochs):
        began = time.perf_counter()
        total = sum(float(train_step()) for _ in range(steps_per_epoch))
        seconds.append(time.perf_counter() - began)
        losses.append(total / steps_per_epoch)
        manager.save()
        print(f"epoch {epoch} saved, loss {losses[-1]:.4f}", flush=True)
        if epoch + 1 < epochs:
            time.sleep(pause)
    return {
        "initial_epoch": start,
        "losses": losses,
        "weights": model.get_weights(),
        "seconds": seconds,
    }


def ps_coordinator(steps: int, batch: int) -> dict[str, object]:
    """The chief of a ParameterServerStrategy job: shard the model's variables over the ps
    tasks, schedule `steps` training steps on the workers, wait for them; return the losses and
    where each variable lives. Worker and ps tasks only serve."""
    import tensorflow as tf

    from scalelab.training import distribute

    distribute.serve_unless_coordinator()  # a worker or ps task serves here until stopped
    import tf_keras as keras  # Keras 3 cannot apply gradients to sharded variables (TF 2.21)

    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    partitioner = tf.distribute.experimental.partitioners.MinSizePartitioner(
        min_shard_bytes=1024, max_shards=2
    )
    strategy = tf.distribute.ParameterServerStrategy(resolver, variable_partitioner=partitioner)
    with strategy.scope():
        model = keras.Sequential(
            [keras.Input((64,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)]
        )
        optimizer = keras.optimizers.legacy.SGD(0.1)
    coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)

    def dataset_fn() -> object:
        x, y = distribute.digits()
        dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x)).repeat()
        return dataset.batch(batch)

    iterator = iter(coordinator.create_per_worker_dataset(dataset_fn))
    per_example = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")

    @tf.function  # type: ignore[untyped-decorator]  # TensorFlow has no type hints
    def train_step(iterator: object) -> object:
        def replica_step(images: object, labels: object) -> object:
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(per_example(labels, model(images, training=True)))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return loss

        losses = strategy.run(replica_step, args=next(iterator))  # type: ignore[call-overload]
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    scheduled = [coordinator.schedule(train_step, args=(iterator,)) for _ in range(steps)]
    coordinator.join()  # wait until every scheduled step has run
    return {
        "losses": [float(step.fetch()) for step in scheduled],
        "variables": {v.name: v.device for v in model.variables},
    }
