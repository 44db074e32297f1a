"""TFLite against Keras on the digits model: int8 size and latency against float, and 2-bit
weights post-training and with QAT, in one run (`scalelab bench tflite`)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from scalelab import data, models, tflite
from scalelab.answers import ch04
from scalelab.training import qat


def _ternary_ptq_and_qat(x_test: np.ndarray, y_test: np.ndarray, epochs: int) -> dict[str, Any]:
    """Chapter 4's small model with 2-bit (ternary) weights: float, post-training, QAT accuracy."""
    with tempfile.TemporaryDirectory() as scratch:
        trained = qat.run_tf_keras(qat.train_float, "float training", folder=scratch)
        result = {"keras": trained["keras"], "float_accuracy": trained["accuracy"]}
        for name, rate in (("ptq", 0.0), ("qat", 1e-3)):
            out = Path(scratch) / f"{name}.tflite"
            qat.run_tf_keras(
                ch04.quantization_aware, f"{name} with 2-bit weights",
                float_model=str(Path(scratch) / "float.keras"), tflite_path=str(out),
                weight_bits=2, epochs=epochs, learning_rate=rate,
            )  # fmt: skip
            result[f"{name}_int8_accuracy"] = ch04.evaluate_tflite(out.read_bytes(), x_test, y_test)
    return result


def tflite_vs_keras() -> list[str]:
    """Size and latency of int8 TFLite against float; 2-bit weights with and without QAT."""
    import tensorflow as tf

    digits = data.load("digits")
    x_train, x_test = data.scale(digits.x_train), data.scale(digits.x_test)
    model, _ = models.train_classifier(digits, epochs=20, hidden=256, depth=2)
    with tempfile.TemporaryDirectory() as scratch:
        model.export(Path(scratch), verbose=False)
        with tflite.quiet():
            float_bytes = tf.lite.TFLiteConverter.from_saved_model(scratch).convert()
        int8_bytes = ch04.convert(scratch, "int8", lambda: ch04.representative_dataset(x_train))
        variants = {"float": float_bytes, "int8": int8_bytes}
    one = x_test[:1]
    runner = tflite.interpreter(variants["int8"])
    keras_ms = 1000 * tflite.seconds(lambda: model.predict(one, verbose=0), 20)
    lite_ms = 1000 * tflite.seconds(lambda: tflite.predict(runner, one), 200)
    qat = _ternary_ptq_and_qat(x_test, digits.y_test, epochs=3)
    drop = {k: 100 * (qat["float_accuracy"] - qat[f"{k}_int8_accuracy"]) for k in ("ptq", "qat")}
    kb = {mode: len(model_bytes) / 1024 for mode, model_bytes in variants.items()}
    return [
        f"size float {kb['float']:.1f} KB, int8 {kb['int8']:.1f} KB",
        f"single sample: Keras predict {keras_ms:.2f} ms, TFLite int8 interpreter {lite_ms:.4f} ms",
        f"accuracy, 2-bit weights ({qat['keras']}): float {qat['float_accuracy']:.4f}, "
        f"PTQ int8 {qat['ptq_int8_accuracy']:.4f}, QAT int8 {qat['qat_int8_accuracy']:.4f}",
        f"size ratio int8/float: {kb['int8'] / kb['float']:.2f}",
        f"accuracy drop vs float: PTQ int8 {drop['ptq']:+.2f} points, "
        f"QAT int8 {drop['qat']:+.2f} points",
        f"latency ratio Keras predict / TFLite: {keras_ms / lite_ms:.0f}x",
    ]
