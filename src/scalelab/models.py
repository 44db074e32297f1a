"""The small Keras models the chapters share, and how to train them in seconds.

Keras is imported on first use, so a tf_keras process (scalelab.training) never loads Keras 3.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from scalelab.data import ImageData, scale

if TYPE_CHECKING:
    import keras


def build_classifier(
    image_shape: tuple[int, ...],
    n_classes: int,
    hidden: int = 64,
    depth: int = 1,
    *,
    logits: bool = False,
    api: ModuleType | None = None,
) -> keras.Model:
    """An MLP with `depth` hidden layers: float32 images scaled to 0..1 → class probabilities
    (or `logits`), built with the Keras `api` module (default Keras 3; tf_keras works too)."""
    if api is None:
        import keras

        api = keras
    return api.Sequential(
        [
            api.Input(shape=image_shape, dtype="float32", name="images"),
            api.layers.Flatten(),
            *(api.layers.Dense(hidden, activation="relu") for _ in range(depth)),
            api.layers.Dense(
                n_classes,
                activation=None if logits else "softmax",
                name="logits" if logits else "probabilities",
            ),
        ],
        name="digits_mlp",
    )


def train_classifier(
    data: ImageData, *, epochs: int = 20, hidden: int = 64, depth: int = 1, verbose: int = 0
) -> tuple[keras.Model, keras.callbacks.History]:
    """Build, compile and fit a classifier on `data`; returns the model and its history."""
    import keras

    model = build_classifier(data.image_shape, data.n_classes, hidden, depth)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = model.fit(
        scale(data.x_train),
        data.y_train,
        validation_data=(scale(data.x_valid), data.y_valid),
        epochs=epochs,
        batch_size=64,
        verbose=verbose,
    )
    return model, history


def accuracy(model: keras.Model, images: np.ndarray, labels: np.ndarray) -> float:
    """Share of `images` (uint8) the model classifies correctly."""
    predictions = model.predict(scale(images), verbose=0).argmax(axis=-1)
    return float(np.mean(predictions == labels))
