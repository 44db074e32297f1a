"""TFLite against Keras on the digits model: int8 (PTQ and QAT) size, accuracy and latency against
float, in one run (`python -m scalelab.bench tflite`)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from scalelab import data, models, tflite


def tflite_vs_keras() -> list[str]:
    """Size, accuracy and latency of int8 TFLite (PTQ and QAT) against float, in one run."""
    import tensorflow as tf

    digits = data.load("digits")
    x_train, x_test = data.scale(digits.x_train), data.scale(digits.x_test)
    model, _ = models.train_classifier(digits, epochs=20, hidden=256, depth=2)
    with tempfile.TemporaryDirectory() as scratch:
        model.export(Path(scratch), verbose=False)
        with tflite.quiet():
            float_bytes = tf.lite.TFLiteConverter.from_saved_model(scratch).convert()
        int8_bytes = tflite.convert_int8(tf.lite.TFLiteConverter.from_saved_model(scratch), x_train)
        variants = {"float": float_bytes, "int8": int8_bytes}
    one = x_test[:1]
    runner = tflite.interpreter(variants["int8"])
    keras_ms = 1000 * tflite.seconds(lambda: model.predict(one, verbose=0), 20)
    lite_ms = 1000 * tflite.seconds(lambda: tflite.predict(runner, one), 200)
    qat = tflite.quantization_aware(epochs=6)
    drop = {k: 100 * (qat["float_accuracy"] - qat[f"{k}_int8_accuracy"]) for k in ("ptq", "qat")}
    kb = {mode: len(model_bytes) / 1024 for mode, model_bytes in variants.items()}
    return [
        f"size float {kb['float']:.1f} KB, int8 {kb['int8']:.1f} KB",
        f"single sample: Keras predict {keras_ms:.2f} ms, TFLite int8 interpreter {lite_ms:.4f} ms",
        f"accuracy ({qat['keras']}): float {qat['float_accuracy']:.4f}, "
        f"PTQ int8 {qat['ptq_int8_accuracy']:.4f}, QAT int8 {qat['qat_int8_accuracy']:.4f}",
        f"size ratio int8/float: {kb['int8'] / kb['float']:.2f}",
        f"accuracy drop vs float: PTQ int8 {drop['ptq']:+.2f} points, "
        f"QAT int8 {drop['qat']:+.2f} points",
        f"latency ratio Keras predict / TFLite: {keras_ms / lite_ms:.0f}x",
    ]
