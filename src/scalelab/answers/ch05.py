"""Reference answers to Chapter 5 (distribution strategies): gradients, strategies, TF_CONFIG."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from scalelab.cluster import make_tf_config

__all__ = [
    "average_gradients",
    "build_digits_model",
    "digits_training_data",
    "make_tf_config",
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
