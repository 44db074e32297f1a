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


def representative_dataset(images: Sequence[Any], n: int = 100) -> Iterator[list[np.ndarray]]:
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


def smallest_within(rows: Sequence[dict[str, Any]], points: float = 1.0) -> str:
    """Exercise 4: name of the smallest variant at most `points` accuracy points below TFLite
    float."""
    baseline = next(r["accuracy"] for r in rows if r["variant"] == "TFLite float")
    good = [r for r in rows if r["accuracy"] >= baseline - points / 100]
    smallest: str = min(good, key=lambda r: r["KB"])["variant"]
    return smallest
