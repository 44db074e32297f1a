"""Trials per minute of one Keras Tuner search in 1 process, and on a chief with 1 and 2 workers,
measured one after another in one run (`scalelab bench tuning`)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from scalelab.processes import cluster
from scalelab.tables import Table
from scalelab.training import tuning


def tuning_speedup(trials: int = 12, epochs: int = 3, timeout: float = 600.0) -> list[str]:
    """The same random search with 1 process, chief + 1 worker, chief + 2 workers; a table."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        for workers, chief in ((1, False), (1, True), (2, True)):
            name = f"chief + {workers} worker(s)" if chief else "1 process"
            directory = Path(scratch) / name.replace(" ", "")
            args = ["cluster", "tune", f"--trials={trials}", f"--epochs={epochs}"]
            args.append(f"--directory={directory}")
            started = time.monotonic()
            with cluster.start_cluster(
                "scalelab",
                args,
                workers=workers,
                chief=chief,
                timeout=timeout,
                finishers=("worker",),
                logdir=directory / "logs",
            ) as search:
                search.wait()
            wall = time.monotonic() - started
            log = tuning.trial_log(directory)
            (row,) = tuning.summary({name: log})
            rows.append({**row, "with start-up s": round(wall, 1)})
    base = rows[0]["trials/min"]
    for row in rows:
        row["speedup"] = round(row["trials/min"] / base, 2)
    columns = ["search", "trials", "seconds", "with start-up s", "trials/min", "speedup"]
    return [repr(Table(rows, [*columns, "best val accuracy"]))]
