"""Collecting students' notebooks into nbgrader's layout, from a folder or from an LMS's zip files.

Whatever students hand in is accepted and kept: a notebook under another file name is filed under
the chapter's name, the latest of several submissions wins, and a file that is not a notebook is
filed as it is for autograde to report. Each decision is written to the student's collection note
(grader/reports/<chapter>/<student>.collect.txt), which the grading summary shows.
"""

from __future__ import annotations

import datetime as dt
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import nbformat

from scalelab.grading.reports import report_path


@dataclass(frozen=True)
class Handed:
    """One notebook a student handed in: where it came from, its bytes, when it was last saved."""

    student: str
    origin: str
    data: bytes
    saved: dt.datetime


def owner(relative: PurePosixPath, students: list[str]) -> str | None:
    """The student a file belongs to: its top folder, or the longest id its name starts with
    followed by `_`, `-` or `.` (LMS exports name files `<id>_<anything>.ipynb`)."""
    if len(relative.parts) > 1 and relative.parts[0] in students:
        return relative.parts[0]
    name = relative.name
    matches = [s for s in students if name.startswith(s) and name[len(s) : len(s) + 1] in "_-."]
    return max(matches, key=len) if matches else None


def scan(source: Path, students: list[str]) -> tuple[list[Handed], list[str]]:
    """Every notebook under `source` (a folder, a zip, or a folder of zips), by student, and the
    names of notebooks that belong to no student on the roster. Origins are relative to `source`."""
    handed: list[Handed] = []
    strays: list[str] = []

    def add(relative: PurePosixPath, origin: str, data: bytes, saved: dt.datetime) -> None:
        student = owner(relative, students)
        if student is None:
            strays.append(origin)
        else:
            handed.append(Handed(student, origin, data, saved))

    archives = [source] if source.suffix == ".zip" else sorted(source.rglob("*.zip"))
    for archive in archives:
        with zipfile.ZipFile(archive) as zipped:
            for info in zipped.infolist():
                relative = PurePosixPath(info.filename)
                if relative.suffix == ".ipynb" and "__MACOSX" not in relative.parts:
                    # A zip named after its student holds that student's files.
                    if owner(relative, students) is None and archive.stem in students:
                        relative = PurePosixPath(archive.stem, relative)
                    saved = dt.datetime(*info.date_time, tzinfo=dt.UTC)
                    add(relative, f"{archive.name}:{info.filename}", zipped.read(info), saved)
    if source.is_dir():
        for path in sorted(source.rglob("*.ipynb")):
            if ".ipynb_checkpoints" not in path.parts:
                saved = dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.UTC)
                add(
                    PurePosixPath(path.relative_to(source).as_posix()),
                    str(path),
                    path.read_bytes(),
                    saved,
                )
    return handed, strays


def is_notebook(data: bytes) -> str:
    """Why `data` is not a notebook nbgrader can read ("" if it is)."""
    try:
        nbformat.validate(nbformat.reads(data.decode(), as_version=4))  # type: ignore[no-untyped-call]
    except Exception as error:  # JSON, encoding and schema errors all mean "not a notebook"
        return f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
    return ""


def collect(root: Path, chapter: str, source: Path, students: list[str]) -> dict[str, list[str]]:
    """File every student's latest notebook of `chapter` from `source` into grader/submitted/;
    return what was noted per student (a student with no notebook is noted too)."""
    handed, strays = scan(source, students)
    notes: dict[str, list[str]] = {s: [] for s in students}
    reports = root / "grader" / "reports"
    for student in students:
        theirs = sorted((h for h in handed if h.student == student), key=lambda h: h.saved)
        if not theirs:
            notes[student].append(f"nothing handed in for {chapter}")
            continue
        latest = theirs[-1]
        if len(theirs) > 1:
            older = ", ".join(h.origin for h in theirs[:-1])
            when = f"{latest.saved:%Y-%m-%d %H:%M}"
            notes[student].append(
                f"{len(theirs)} notebooks handed in: graded the latest, {latest.origin} "
                f"({when}); ignored {older}"
            )
        name = PurePosixPath(latest.origin.rpartition(":")[2]).name
        if name not in (f"{chapter}.ipynb", f"{student}_{chapter}.ipynb"):
            notes[student].append(f"{latest.origin} filed as {chapter}.ipynb")
        if problem := is_notebook(latest.data):
            notes[student].append(f"not a readable notebook ({problem}): scored 0")
        target = root / "grader" / "submitted" / student / chapter / f"{chapter}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(latest.data)
        # nbgrader reads the submission time from here (late penalties use it).
        (target.parent / "timestamp.txt").write_text(f"{latest.saved:%Y-%m-%d %H:%M:%S.%f %Z}")
    for student, said in notes.items():
        note = report_path(reports, chapter, f"{student}.collect")
        note.parent.mkdir(parents=True, exist_ok=True)
        note.write_text("".join(line + "\n" for line in said))
    if strays:
        notes["(no student)"] = [f"{s}: no student on the roster owns it" for s in strays]
    return notes
