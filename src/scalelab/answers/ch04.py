"""Chapter 4's reference answers (TFLite): what its tests compare against, and what later cells
fall back to when an exercise is unanswered."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from scalelab import tflite

MODES = ("float", "dynamic", "float16", "int8")
QUIZ = {"quiz_04_1": "d", "quiz_04_2": "b"}


def representative_dataset(
    images: Sequence[Any] | np.ndarray, n: int = 100
) -> Iterator[list[np.ndarray]]:
    """Exercise 1: yield [one float32 image with a batch dimension] for the first n images."""
    for image in np.asarray(images[:n], dtype=np.float32):
        yield [image[None]]


def convert(
    saved_model_dir: str | Path,
    mode: str,
    representative: Callable[[], Iterable[list[Any]]] | None = None,
) -> bytes:
    """Exercise 2: .tflite bytes for mode "float", "dynamic", "float16" or "int8" (full integer,
    int8 inputs and outputs, calibrated with the samples `representative()` returns)."""
    import tensorflow as tf

    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    if mode != "float":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if mode == "int8":
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    with tflite.quiet():
        model: bytes = converter.convert()
    return model


def evaluate_tflite(model_bytes: bytes, x: np.ndarray, y: np.ndarray) -> float:
    """Exercise 3: accuracy of a .tflite model on float inputs x (0..1) and labels y."""
    predictions = tflite.predict(tflite.interpreter(model_bytes), np.asarray(x, np.float32))
    return float(np.mean(predictions.argmax(axis=1) == np.asarray(y)))


def quantization_aware(
    float_model: str,
    tflite_path: str,
    weight_bits: int = 8,
    epochs: int = 1,
    learning_rate: float = 1e-3,
) -> dict[str, Any]:
    """Exercise 5 (runs in a tf_keras process): fine-tune the model with fake quantization
    (`weight_bits`-bit weights, 8-bit activations), write it as a full-integer .tflite."""
    from pathlib import Path

    import numpy as np
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras
    from tensorflow_model_optimization.quantization.keras.experimental import default_n_bit

    from scalelab import data

    digits = data.load("digits")
    x, y = data.scale(digits.x_train), digits.y_train
    model = keras.models.load_model(float_model)
    scheme = default_n_bit.DefaultNBitQuantizeScheme(
        num_bits_weight=weight_bits, num_bits_activation=8
    )
    annotated = tfmot.quantization.keras.quantize_annotate_model(model)
    with tfmot.quantization.keras.quantize_scope():
        aware = tfmot.quantization.keras.quantize_apply(annotated, scheme)
    aware.compile(
        keras.optimizers.Adam(learning_rate),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = aware.fit(x, y, epochs=epochs, verbose=0)
    converter = tf.lite.TFLiteConverter.from_keras_model(aware)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    Path(tflite_path).write_bytes(converter.convert())
    return {
        "layers": [type(layer).__name__ for layer in aware.layers],
        "loss": [float(v) for v in history.history["loss"]],
        "samples": int(np.shape(x)[0]),
    }
