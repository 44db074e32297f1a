"""Per-student problem reports: what the grading guards found in one submission."""

from __future__ import annotations

from pathlib import Path


def report_path(directory: str | Path, assignment: str, student: str) -> Path:
    """Where the problems found in one student's submission of one assignment are written."""
    return Path(directory) / assignment / f"{student}.txt"


def read_report(directory: str | Path, assignment: str, student: str) -> list[str]:
    """The problems reported for one submission, oldest first (none if it was never graded)."""
    path = report_path(directory, assignment, student)
    return path.read_text().splitlines() if path.is_file() else []
