"""Steps/s of the digits model under each tf.distribute strategy and API, one local cluster after
another: `python -m scalelab.cluster bench`."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

from scalelab.cluster import start_cluster
from scalelab.tables import Table

COLUMNS = ("strategy", "keras", "api", "workers", "replicas", "global_batch", "steps_per_s")


def bench(steps: int = 200, global_batch: int = 64, timeout: float = 300.0) -> list[dict[str, Any]]:
    """Train with each strategy and API, one cluster after another; print steps/s as a table.

    Keras 3 `fit` fails under MultiWorkerMirroredStrategy, so that row uses tf_keras.
    """
    rows = []
    for strategy in ("none", "mirrored", "central_storage", "mwms"):
        for api in ("ctl", "fit"):
            args = ["train", strategy, f"--api={api}", "--epochs=2", f"--steps-per-epoch={steps}"]
            with start_cluster(
                "scalelab.cluster",
                [*args, f"--global-batch={global_batch}"],
                workers=2 if strategy == "mwms" else 1,
                timeout=timeout,
                legacy_keras=strategy == "mwms" and api == "fit",
            ) as cluster:
                rows.append(cluster.wait()["worker:0"].result or {"strategy": strategy, "api": api})
    print(format_table(rows))
    return rows


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Benchmark results as a compact text table, one line per run."""
    return repr(Table(rows, COLUMNS))


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m scalelab.cluster bench [--steps N] [--global-batch N]`."""
    parser = argparse.ArgumentParser(prog="python -m scalelab.cluster bench", description=__doc__)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--global-batch", type=int, default=64)
    options = parser.parse_args(argv)
    bench(options.steps, options.global_batch)
