"""SavedModel plumbing for the notebooks: list its files, run saved_model_cli, number versions,
copy one in the naive way."""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scalelab.processes import children


def list_files(export_dir: str | Path) -> list[tuple[str, int]]:
    """Every file under a SavedModel directory as (relative path, size in bytes), sorted by path."""
    root = Path(export_dir)
    if not (root / "saved_model.pb").is_file():
        raise FileNotFoundError(
            f"{root} is not a SavedModel directory (no saved_model.pb in it): "
            "export a model there first, e.g. with model.export(path)."
        )
    return sorted(
        (path.relative_to(root).as_posix(), path.stat().st_size)
        for path in root.rglob("*")
        if path.is_file()
    )


def saved_model_cli(*args: str | Path, timeout: float = 120) -> str:
    """Run `saved_model_cli ARGS` in a fresh process, print what it printed, and return it.

    Runs TensorFlow's own CLI module with this kernel's Python, so it works even when the
    virtual environment's `bin/` is not on PATH (as under papermill or nbgrader); from the fork
    server where one runs (the tests), which saves the CLI its 4 s import of TensorFlow.
    """
    words = [str(arg) for arg in args]
    print("$ saved_model_cli", shlex.join(words))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    cli = "tensorflow.python.tools.saved_model_cli"
    command = children.python(cli, words, skip=children.KERAS_EXTRAS)
    done = children.run(command, "saved_model_cli", env=env, timeout=timeout, warm=True)
    print(done.stdout.rstrip())
    return done.stdout


def version_path(base_path: str | Path, version: int) -> Path:
    """Where TF Serving looks for `version` of a model: a numbered folder such as base/0002."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"A model version is a positive integer (1, 2, ...), not {version!r}.")
    return Path(base_path) / f"{version:04d}"


def copy_variables_last(export_dir: str | Path, target: str | Path, pause: float = 3.0) -> None:
    """Copy a SavedModel the naive way, as a slow copy would: everything but `variables/` first,
    the variables `pause` seconds later (the half-copied version TF Serving can load).

    The folder appears with its graph already in it (it is renamed into place), so the demo never
    catches it empty; a real `cp -r` can, and TF Serving then retries that load for minutes.
    """
    source, target = Path(export_dir), Path(target)
    if target.exists():
        raise FileExistsError(f"{target} exists: remove it, or copy to another version.")
    partial = target.parent / f".partial-{target.name}"
    shutil.rmtree(partial, ignore_errors=True)

    def top_variables(folder: str, names: list[str]) -> list[str]:
        return ["variables"] if Path(folder) == source else []

    shutil.copytree(source, partial, ignore=top_variables)
    partial.rename(target)
    time.sleep(pause)
    shutil.copytree(source / "variables", target / "variables")


def export_classifier(model: Any, export_dir: str | Path, class_names: Sequence[str]) -> Path:
    """Export a Keras classifier as Chapter 1 teaches: raw uint8 images in, scaling in the graph.

    The `serving_default` signature takes `images` (uint8, [None, *image shape]) and returns
    `probabilities`, `class_id` and `class_name` (from an assets/class_names.txt vocabulary).
    """
    import keras
    import tensorflow as tf

    export_dir = Path(export_dir)
    with tempfile.TemporaryDirectory() as scratch:
        vocabulary = Path(scratch) / "class_names.txt"
        vocabulary.write_text("\n".join(class_names) + "\n")
        lines = tf.lookup.TextFileInitializer(
            str(vocabulary),
            key_dtype=tf.int64,
            key_index=tf.lookup.TextFileIndex.LINE_NUMBER,
            value_dtype=tf.string,
            value_index=tf.lookup.TextFileIndex.WHOLE_LINE,
        )
        table = tf.lookup.StaticHashTable(lines, default_value="?")

        def serve(images: tf.Tensor) -> dict[str, tf.Tensor]:
            probabilities = model(tf.cast(images, tf.float32) / 255.0)
            class_id = tf.argmax(probabilities, axis=-1)
            return {
                "probabilities": probabilities,
                "class_id": class_id,
                "class_name": table.lookup(class_id),
            }

        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.track(table)
        spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.uint8, name="images")
        archive.add_endpoint("serving_default", serve, input_signature=[spec])
        archive.write_out(str(export_dir), verbose=False)
    return export_dir
