"""Autograding throughput: simulated submissions of each chapter (full, partial, empty and broken
in turn), graded one at a time and then in parallel in one run (`scalelab bench grading`).
"""

from __future__ import annotations

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
    repo: Path, chapters: list[str], submissions: int = 30, workers: tuple[int, ...] = (1, 2)
) -> list[str]:
    """Submissions per minute per chapter, graded with each number of `workers`; a table."""
    rows: list[dict[str, Any]] = []
    for chapter in chapters:
        for count in workers:
            with tempfile.TemporaryDirectory() as scratch:
                root = Path(scratch) / "course"
                solution, release = grading.course_copy(repo, chapter, root)
                handed = simulated(solution, release, submissions)
                for student, text in handed.items():
                    target = root / "grader" / "submitted" / student / chapter / f"{chapter}.ipynb"
                    target.parent.mkdir(parents=True)
                    target.write_text(text)
                started = time.monotonic()
                failed = grading.autograde_students(root, chapter, sorted(handed), workers=count)
                seconds = time.monotonic() - started
            rows.append({
                "chapter": chapter, "workers": count, "submissions": submissions,
                "not graded": len(failed), "seconds": round(seconds, 1),
                "per minute": round(60 * submissions / seconds, 2),
            })  # fmt: skip
    total = {count: sum(r["seconds"] for r in rows if r["workers"] == count) for count in workers}
    lines = [str(Table(rows))]
    for count, seconds in total.items():
        lines.append(
            f"{count} worker(s): {len(chapters) * submissions} submissions in {seconds:.0f} s"
        )
    return lines
