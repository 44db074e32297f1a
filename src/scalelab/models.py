"""The small Keras models the chapters share, and how to train them in seconds."""

from __future__ import annotations

import keras
import numpy as np

from scalelab.data import ImageData, scale


def build_classifier(
    image_shape: tuple[int, ...], n_classes: int, hidden: int = 64, depth: int = 1
) -> keras.Model:
    """An MLP with `depth` hidden layers: float32 images scaled to 0..1 → class probabilities."""
    return keras.Sequential(
        [
            keras.Input(shape=image_shape, dtype="float32", name="images"),
            keras.layers.Flatten(),
            *(keras.layers.Dense(hidden, activation="relu") for _ in range(depth)),
            keras.layers.Dense(n_classes, activation="softmax", name="probabilities"),
        ],
        name="digits_mlp",
    )


def train_classifier(
    data: ImageData, *, epochs: int = 20, hidden: int = 64, depth: int = 1, verbose: int = 0
) -> tuple[keras.Model, keras.callbacks.History]:
    """Build, compile and fit a classifier on `data`; returns the model and its history."""
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
