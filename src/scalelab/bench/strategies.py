"""Steps/s of the digits model under each tf.distribute strategy, each in fresh processes
(`scalelab bench strategies`). The programs are Chapter 5's reference answers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from scalelab.tables import Table

COLUMNS = ("strategy", "keras", "api", "workers", "replicas", "global_batch", "steps_per_s")


def bench(steps: int = 200, global_batch: int = 64, timeout: float = 300.0) -> list[dict[str, Any]]:
    """Time each strategy after a warm-up epoch, one process (or cluster) after another: a row of
    steps/s each. One machine: Keras 3 `fit` (exercise 2's model); MultiWorkerMirrored:
    the reference worker program (a Keras 3 custom loop) on 2 local workers."""
    from scalelab.answers import ch05
    from scalelab.processes import programs
    from scalelab.training import distribute

    rows = []
    for strategy in ("none", "mirrored", "central_storage"):
        rows.append(
            programs.run_function(
                _one_process,
                {"strategy": strategy, "steps": steps, "global_batch": global_batch},
                what=f"the {strategy} benchmark",
                env={"TF_CPP_MIN_LOG_LEVEL": "2"},
                timeout=timeout,
            )
        )
    ended = distribute.run_mwms(
        ch05.mwms_worker, epochs=2, steps_per_epoch=steps, global_batch=global_batch
    )
    seconds = (ended["worker:0"].result or {})["seconds"][-1]
    rows.append(
        {
            "strategy": "mwms",
            "keras": _keras_version(),
            "api": "ctl",
            "workers": len(ended),
            "replicas": len(ended),
            "global_batch": global_batch,
            "steps_per_s": round(steps / seconds, 1),
        }
    )
    return rows


def _one_process(strategy: str, steps: int, global_batch: int) -> dict[str, object]:
    """Steps/s of Keras 3 `fit` under `strategy` on 2 logical CPUs (run in a fresh process)."""
    import time

    import tensorflow as tf

    (cpu,) = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    devices = ["/cpu:0", "/cpu:1"]
    import keras

    from scalelab.answers import ch05
    from scalelab.training import distribute

    chosen = {
        "none": tf.distribute.get_strategy,
        "mirrored": lambda: tf.distribute.MirroredStrategy(devices),
        "central_storage": lambda: tf.distribute.experimental.CentralStorageStrategy(devices),
    }[strategy]()
    with chosen.scope():
        model = ch05.build_digits_model()
    x, y = distribute.digits()
    batches = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(global_batch)
    model.fit(batches, epochs=1, steps_per_epoch=steps, verbose=0)  # traces and warms up
    began = time.perf_counter()
    model.fit(batches, epochs=1, steps_per_epoch=steps, verbose=0)
    return {
        "strategy": strategy,
        "keras": keras.__version__,
        "api": "fit",
        "workers": 1,
        "replicas": chosen.num_replicas_in_sync,
        "global_batch": global_batch,
        "steps_per_s": round(steps / (time.perf_counter() - began), 1),
    }


def _keras_version() -> str:
    from importlib.metadata import version

    return version("keras")


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Benchmark results as a compact text table, one line per run."""
    return repr(Table(rows, COLUMNS))
