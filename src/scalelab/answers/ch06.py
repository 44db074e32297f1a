"""Reference answers to Chapter 6 (hyperparameter tuning): the search space, the tuners, the search.

Each function imports what it uses inside its body: the distributed search ships their sources to
other processes (`tuning.start_search`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_model", "make_tuner", "run_search"]


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


def make_tuner(kind: str, build_model: Any, directory: Any, max_trials: int, epochs: int) -> Any:
    """A Keras Tuner tuner of `kind` (random, bayesian, hyperband) maximising val_accuracy."""
    import keras_tuner

    common = {
        "objective": "val_accuracy",
        "directory": str(directory),
        "project_name": "search",
        "overwrite": True,
        "seed": 42,
    }
    if kind == "random":
        return keras_tuner.RandomSearch(build_model, max_trials=max_trials, **common)
    if kind == "bayesian":
        return keras_tuner.BayesianOptimization(
            build_model, max_trials=max_trials, num_initial_points=2, **common
        )
    if kind == "hyperband":
        return keras_tuner.Hyperband(
            build_model, max_epochs=epochs, factor=3, hyperband_iterations=1, **common
        )
    raise ValueError(f"Unknown tuner {kind!r}: use random, bayesian or hyperband.")


def run_search(
    tuner: Any, x: Any, y: Any, x_valid: Any, y_valid: Any, epochs: int
) -> dict[str, Any]:
    """Search with the validation data as the objective's data, stopping each trial early when
    its validation loss stops improving; the best trial's hyperparameter values."""
    import keras

    stop_early = keras.callbacks.EarlyStopping(monitor="val_loss", patience=2)
    tuner.search(
        x, y, validation_data=(x_valid, y_valid), epochs=epochs, callbacks=[stop_early], verbose=0
    )
    return dict(tuner.get_best_hyperparameters(1)[0].values)
