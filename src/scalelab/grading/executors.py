"""Where grading tasks run: the local pool (threads, each driving its own nbgrader process), or a
Dask cluster reached by its scheduler's address or file (`distributed`'s `Client.get_executor`,
a standard `concurrent.futures` executor). A task on a worker that dies is run again on another
(Dask reschedules it), and its result reaches the instructor's process once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path

from scalelab.grading.commands import GradingError

# How often a task that raised is tried again on the cluster (a worker lost mid-task is handled
# by the scheduler itself, up to its `allowed-failures`).
RETRIES = 2
# How long to wait for the scheduler to answer.
CONNECT_TIMEOUT = "30s"


@contextlib.contextmanager
def pool(workers: int, scheduler: str | None = None) -> Iterator[tuple[Executor, str]]:
    """An executor for grading tasks and where it runs them, in words: `workers` threads here,
    or the Dask cluster whose scheduler is at `scheduler` (tcp://host:8786, or a scheduler file)."""
    if not scheduler:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as local:
            yield local, f"this machine ({max(1, workers)} at a time)"
        return
    try:
        from distributed import Client
    except ImportError as missing:
        raise GradingError(
            "grading on a Dask cluster needs Dask's distributed package here and on the workers: "
            "pip install distributed"
        ) from missing
    where = {"scheduler_file": scheduler} if Path(scheduler).is_file() else {"address": scheduler}
    try:
        client = Client(**where, timeout=CONNECT_TIMEOUT)  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError) as error:
        raise GradingError(
            f"no Dask scheduler answered at {scheduler} ({error}): start one (`dask scheduler`, "
            "then `dask worker tcp://HOST:8786` on each machine) or grade without --scheduler"
        ) from error
    with client:
        info = client.scheduler_info()
        cluster = client.get_executor(retries=RETRIES, pure=False)  # type: ignore[no-untyped-call]
        yield cluster, f"the Dask cluster at {info['address']} ({len(info['workers'])} workers)"
