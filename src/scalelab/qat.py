"""Quantization-aware training with tf_keras, run as `python -m scalelab.qat OUT EPOCHS HIDDEN`.

A child process of `scalelab.tflite.quantization_aware`: it must start with TF_USE_LEGACY_KERAS=1,
because tensorflow-model-optimization needs tf_keras, not Keras 3.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def main(out: Path, epochs: int, hidden: int) -> None:
    """Train, then fine-tune as float (→ PTQ int8) and with fake quantization (→ QAT int8)."""
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

    from scalelab import data
    from scalelab.tflite import convert_int8, interpreter, predict

    tf.random.set_seed(42)
    digits = data.load("digits")
    x_train, x_test = data.scale(digits.x_train), data.scale(digits.x_test)
    model = keras.Sequential(
        [
            keras.layers.Flatten(input_shape=digits.image_shape),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dense(digits.n_classes, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, digits.y_train, epochs=4 * epochs, verbose=0)

    def to_int8(keras_model: keras.Model) -> bytes:
        return convert_int8(tf.lite.TFLiteConverter.from_keras_model(keras_model), x_train)

    def accuracy(model_bytes: bytes) -> float:
        predictions = predict(interpreter(model_bytes), x_test).argmax(axis=1)
        return float(np.mean(predictions == digits.y_test))

    aware = tfmot.quantization.keras.quantize_model(model)  # a copy, with fake-quant ops
    aware.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    aware.fit(x_train, digits.y_train, epochs=epochs, verbose=0)
    model.fit(x_train, digits.y_train, epochs=epochs, verbose=0)  # same budget, in float
    float_accuracy = float(model.evaluate(x_test, digits.y_test, verbose=0)[1])
    ptq, qat = to_int8(model), to_int8(aware)
    (out / "ptq_int8.tflite").write_bytes(ptq)
    (out / "qat_int8.tflite").write_bytes(qat)
    result = {
        "keras": "tf_keras " + keras.__version__,
        "float_accuracy": float_accuracy,
        "ptq_int8_accuracy": accuracy(ptq),
        "qat_int8_accuracy": accuracy(qat),
    }
    (out / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
