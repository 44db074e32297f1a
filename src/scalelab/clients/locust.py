"""Locust, the load-testing tool, run headless on a locustfile for a bounded time, its final
statistics read back (`--json-file`)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from scalelab.processes import children


class LocustError(RuntimeError):
    """Locust could not run the locustfile (its last lines say why)."""


def run(
    locustfile: str | os.PathLike[str],
    host: str,
    *,
    users: int,
    seconds: float,
    spawn_rate: float | None = None,
) -> dict[str, Any]:
    """Run `locustfile` headless against `host` with `users` users (started at `spawn_rate` per
    second, all at once by default) for `seconds`; the final statistics of all its requests."""
    if users < 1 or seconds < 1:
        raise ValueError("a Locust run needs at least 1 user and 1 second")
    locustfile = Path(locustfile).resolve()
    if not locustfile.is_file():
        raise FileNotFoundError(f"No locustfile {locustfile}: write it first.")
    with tempfile.TemporaryDirectory() as scratch:
        final = Path(scratch) / "final"
        args = [
            *("-f", str(locustfile), "--headless", "-H", host),
            *("-u", str(users), "-r", str(spawn_rate or users), "-t", f"{seconds:g}s"),
            *("--json-file", str(final), "--only-summary", "--loglevel", "WARNING"),
            *("--exit-code-on-error", "0"),  # failed requests are counted, not an error
        ]
        children.run(
            children.python("locust", args),
            f"Locust on {locustfile.name}",
            cwd=locustfile.parent,
            timeout=seconds + 60,
            error=LocustError,
        )
        entries = json.loads(final.with_suffix(".json").read_text())
    return summary(entries, users)


def summary(entries: list[dict[str, Any]], users: int) -> dict[str, Any]:
    """One row from Locust's final statistics (one entry per request name): requests, failures,
    requests/s, latency percentiles (ms), and the requests of each second."""
    times: dict[float, int] = {}
    per_second: dict[int, int] = {}
    for entry in entries:
        for ms, count in entry["response_times"].items():
            times[float(ms)] = times.get(float(ms), 0) + count
        for second, count in entry["num_reqs_per_sec"].items():
            per_second[int(second)] = per_second.get(int(second), 0) + count
    requests = sum(entry["num_requests"] for entry in entries)
    began = min((entry["start_time"] for entry in entries), default=0.0)
    ended = max((entry["last_request_timestamp"] or began for entry in entries), default=0.0)
    return {
        "users": users,
        "requests": requests,
        "failures": sum(entry["num_failures"] for entry in entries),
        "requests/s": round(requests / max(ended - began, 1e-9), 1),
        "p50 ms": _percentile(times, 0.5),
        "p99 ms": _percentile(times, 0.99),
        "requests per second": [per_second[s] for s in sorted(per_second)],
        "names": sorted(f"{entry['method']} {entry['name']}" for entry in entries),
    }


def _percentile(times: dict[float, int], q: float) -> float:
    """The q-quantile of Locust's response times (rounded milliseconds -> count); nan if none."""
    total = sum(times.values())
    seen = 0
    for ms in sorted(times):
        seen += times[ms]
        if seen >= q * total and total:
            return ms
    return float("nan")
