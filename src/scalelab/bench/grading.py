"""Autograding throughput: simulated submissions of each chapter (full, partial, empty and broken
in turn), graded one at a time, in the local pool and on a Dask LocalCluster of as many worker
processes, side by side in one run (`scalelab bench grading`).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import statistics
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
    repo: Path, chapters: list[str], submissions: int = 30, workers: int = 2, rounds: int = 1
) -> list[str]:
    """Submissions per minute per chapter: one at a time, `workers` at a time in the local pool,
    and on a Dask LocalCluster of `workers` processes (if distributed is installed), the ways
    taking turns in each of `rounds` rounds; a table, and each way's median over the rounds."""
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
        for turn, chapter, (way, count, scheduler) in itertools.product(
            range(1, rounds + 1), chapters, ways
        ):
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
                "round": turn, "chapter": chapter, "graded": way, "submissions": submissions,
                "not graded": len(graded.failed), "seconds": round(seconds, 1),
                "per minute": round(60 * submissions / seconds, 2),
            })  # fmt: skip
    total = len(chapters) * submissions
    rates = {
        way: [
            60 * total / sum(r["seconds"] for r in rows if (r["graded"], r["round"]) == (way, turn))
            for turn in range(1, rounds + 1)
        ]
        for way, _, _ in ways
    }
    lines = [str(Table(rows))]
    for way, per_round in rates.items():
        lines.append(
            f"{way}: {total} submissions per round, {statistics.median(per_round):.2f} per minute "
            f"(median of {rounds} round(s); {min(per_round):.2f}-{max(per_round):.2f})"
        )
    if len(ways) == 3:
        pool, cluster = (rates[way] for way, _, _ in ways[1:])
        ratios = [c / p for c, p in zip(cluster, pool, strict=True)]
        lines.append(
            f"cluster / pool, round by round: median {statistics.median(ratios):.2f} "
            f"({min(ratios):.2f}-{max(ratios):.2f})"
        )
    return lines
