"""Quantization-aware training runs with tf_keras, in a process of its own (Chapter 4).

tensorflow-model-optimization only works with tf_keras, which a process must choose (with
TF_USE_LEGACY_KERAS=1) before it imports TensorFlow; notebooks already run Keras 3. So the
chapter's small float model is trained in such a process (`train_float`), and so is the
learner's QAT program (`run_tf_keras`). Importing this module never imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from scalelab.processes import programs

TF_KERAS = {"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}


def run_tf_keras(
    program: Callable[..., Any], what: str, timeout: float = 300, **kwargs: Any
) -> dict[str, Any]:
    """`program(**kwargs)` in a new Python process whose Keras is tf_keras; what it returns."""
    return programs.run_function(program, kwargs, what=what, env=TF_KERAS, timeout=timeout)


def train_float(folder: str, hidden: int = 64, epochs: int = 20, seed: int = 1) -> dict[str, Any]:
    """(Runs in a tf_keras process.) Train the small digits MLP; save it as `folder`/float.keras
    (for QAT) and as a SavedModel in `folder`/saved_model (for the converter); its accuracy."""
    from pathlib import Path

    import tensorflow as tf
    import tf_keras as keras

    from scalelab import data, models

    tf.keras.utils.set_random_seed(seed)
    digits = data.load("digits")
    model = models.build_classifier(digits.image_shape, digits.n_classes, hidden, api=keras)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(data.scale(digits.x_train), digits.y_train, epochs=epochs, verbose=0)
    accuracy = model.evaluate(data.scale(digits.x_test), digits.y_test, verbose=0)[1]
    model.save(Path(folder) / "float.keras")
    tf.saved_model.save(model, str(Path(folder) / "saved_model"))
    return {"keras": f"tf_keras {keras.__version__}", "accuracy": float(accuracy)}
