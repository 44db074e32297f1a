"""Autograding throughput: simulated submissions of each chapter (full, partial, empty and broken
in turn), graded one at a time, in the local pool and on a Dask LocalCluster of as many worker
processes, side by side in one run (`scalelab bench grading`).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from scalelab import grading
from scalelab.tables import Table

KINDS = ("full", "partial", "empty", "broken")


def simulated(solution: Path, release: Path, count: int) -> dict[str, str]:
    """`count` submissions {student: notebook text}, cycling through KINDS: the solution, the
    solution with its first exercise left as handed out, the untouched notebook, invalid JSON."""
    stubs = grading.exercise_stubs(release)
    first = next(iter(stubs))
    texts = {
        "full": solution.read_text(),
        "partial": json.dumps(grading.with_answers(solution, {first: stubs[first]})),
        "empty": release.read_text(),
        "broken": release.read_text()[: len(release.read_text()) // 2],
    }
    return {f"{KINDS[i % 4]}-{i:03d}": texts[KINDS[i % 4]] for i in range(count)}


def grading_throughput(
    repo: Path, chapters: list[str], submissions: int = 30, workers: int = 2
) -> list[str]:
    """Submissions per minute per chapter: one at a time, `workers` at a time in the local pool,
    and on a Dask LocalCluster of `workers` processes (if distributed is installed); a table."""
    with contextlib.ExitStack() as stack:
        ways: list[tuple[str, int, str | None]] = [
            ("1 at a time", 1, None),
            (f"local pool, {workers}", workers, None),
        ]
        try:
            from distributed import LocalCluster
        except ImportError:
            print("no Dask (pip install distributed): the cluster path is not measured")
        else:
            cluster = stack.enter_context(
                LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0")  # type: ignore[no-untyped-call]
            )
            ways.append((f"Dask LocalCluster, {workers}", workers, cluster.scheduler_address))
        rows: list[dict[str, Any]] = []
        for chapter in chapters:
            for way, count, scheduler in ways:
                with tempfile.TemporaryDirectory() as scratch:
                    root = Path(scratch) / "course"
                    solution, release = grading.course_copy(repo, chapter, root)
                    handed = simulated(solution, release, submissions)
                    for student, text in handed.items():
                        folder = root / "grader" / "submitted" / student / chapter
                        folder.mkdir(parents=True)
                        (folder / f"{chapter}.ipynb").write_text(text)
                    started = time.monotonic()
                    graded = grading.autograde_students(
                        root, chapter, sorted(handed), workers=count, scheduler=scheduler
                    )
                    seconds = time.monotonic() - started
                rows.append({
                    "chapter": chapter, "graded": way, "submissions": submissions,
                    "not graded": len(graded.failed), "seconds": round(seconds, 1),
                    "per minute": round(60 * submissions / seconds, 2),
                })  # fmt: skip
    lines = [str(Table(rows))]
    for way, _, _ in ways:
        seconds = sum(r["seconds"] for r in rows if r["graded"] == way)
        total = len(chapters) * submissions
        lines.append(
            f"{way}: {total} submissions in {seconds:.0f} s, {60 * total / seconds:.2f} per minute"
        )
    return lines
