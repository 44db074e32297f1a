"""Chapter 1 (SavedModel): reference answers, and the TF1-style run its export test grades with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from scalelab.data import scale


def export_two_signatures(model: Any, export_dir: str | Path) -> None:
    """Exercise 1: save `model` with `serving_default` (raw uint8 `images`, scaled in the graph;
    `probabilities` and int64 `class_id`) and `scaled` (float32 `scaled_images` in 0..1)."""
    import keras
    import tensorflow as tf

    image_shape = [None, *model.input_shape[1:]]

    def serve_raw(images: tf.Tensor) -> dict[str, tf.Tensor]:
        probabilities = model(tf.cast(images, tf.float32) / 255.0)
        return {"probabilities": probabilities, "class_id": tf.argmax(probabilities, axis=-1)}

    def serve_scaled(scaled_images: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"probabilities": model(scaled_images)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    raw_spec = tf.TensorSpec(image_shape, tf.uint8, name="images")
    scaled_spec = tf.TensorSpec(image_shape, tf.float32, name="scaled_images")
    archive.add_endpoint("serving_default", serve_raw, input_signature=[raw_spec])
    archive.add_endpoint("scaled", serve_scaled, input_signature=[scaled_spec])
    archive.write_out(str(export_dir), verbose=False)


def describe_signature(
    export_dir: str | Path, signature_name: str = "serving_default"
) -> dict[str, dict[str, tuple[str, tuple[int | None, ...]]]]:
    """Exercise 2: {"inputs": {name: (dtype name, shape)}, "outputs": {...}} of one signature."""
    import tensorflow as tf

    signature = tf.saved_model.load(str(export_dir)).signatures[signature_name]

    def describe(specs: dict[str, tf.TensorSpec]) -> dict[str, tuple[str, tuple[int | None, ...]]]:
        return {
            name: (spec.dtype.name, tuple(spec.shape.as_list())) for name, spec in specs.items()
        }

    return {
        "inputs": describe(signature.structured_input_signature[1]),
        "outputs": describe(signature.structured_outputs),
    }


def predict_with_savedmodel(export_dir: str | Path, images: np.ndarray) -> np.ndarray:
    """Exercise 3: class probabilities for raw uint8 `images` from `serving_default`, scaling
    them first when the signature takes float32."""
    import tensorflow as tf

    signature = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    ((name, spec),) = signature.structured_input_signature[1].items()
    batch = images if spec.dtype == tf.uint8 else scale(images)
    outputs = signature(**{name: tf.constant(batch, dtype=spec.dtype)})
    probabilities = outputs["probabilities"] if "probabilities" in outputs else outputs.popitem()[1]
    array: np.ndarray = probabilities.numpy()
    return array


def run_in_tf1_session(
    export_dir: str | Path, signature_name: str, **inputs: np.ndarray
) -> dict[str, np.ndarray]:
    """Run one signature the way `saved_model_cli run` and TF Serving's C++ loader do: the
    TF1-style loader restores the `serve` metagraph into a fresh graph and session."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(export_dir))
        if signature_name not in meta_graph.signature_def:
            names = sorted(meta_graph.signature_def)
            raise RuntimeError(f"no signature {signature_name!r} in this export, only {names}")
        signature = meta_graph.signature_def[signature_name]
        if set(inputs) != set(signature.inputs):
            raise RuntimeError(
                f"signature {signature_name!r} takes the inputs {sorted(signature.inputs)}, "
                f"not {sorted(inputs)}"
            )
        feeds = {signature.inputs[name].name: value for name, value in inputs.items()}
        fetches = {name: info.name for name, info in signature.outputs.items()}
        try:
            outputs: dict[str, np.ndarray] = session.run(fetches, feed_dict=feeds)
            return outputs
        except tf.errors.OpError as error:
            reason = error.message.strip().splitlines()[0][:200]
            raise RuntimeError(
                "Python's tf.saved_model.load may read this export, but the TF1-style loader "
                f"behind `saved_model_cli run` and TF Serving cannot run {signature_name!r}: "
                f"{reason}"
            ) from None
