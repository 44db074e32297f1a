"""One student's grading as a self-contained task, for any executor (the local pool, a Dask
cluster): the chapter's grading files and the submission go in as bytes; the autograded folder,
the guards' report and the worker's name come out. A worker grades in a fresh copy of the course
with its own `nbgrader autograde`; the instructor's process then records the result in its
gradebook as autograde does (nbgrader's SaveAutoGrades over the autograded notebook), one student
at a time, so there is one writer and nothing is graded twice.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import io
import json
import os
import shutil
import socket
import tarfile
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from scalelab.grading import reports, sandbox, submissions
from scalelab.grading.commands import CONFIG, nbgrader

# What a chapter's run leaves beside its notebook; never part of what a worker gets. The course's
# nbgrader config leaves the same names out of releases.
GENERATED = ("models", "exports", "results.json", "tuning", "feedback")
# Beside an autograded notebook: the digest of what it graded (resuming skips it while the
# submission and the tests are the same).
DONE = ".scalelab-graded"
# Set for nbgrader on a worker: the instructor's course, which kernels may not open either.
ORIGIN = "SCALELAB_GRADING_ORIGIN"
# Why a student was not graded when its task gave no outcome (a Job's pod failed every try, a
# Dask task raised or lost its worker too often).
NO_RESULT = "no result came back from the grader"


def graders_failure(why: str) -> bool:
    """Whether a student was not graded through the grader's fault (the sandbox did not start,
    a pod failed): nothing is recorded for them, and no grades are exported."""
    return why.startswith((sandbox.NOT_STARTED, NO_RESULT))


@dataclass(frozen=True)
class Course:
    """What a worker needs to grade one chapter: its files (a gzipped tar) and where they came
    from."""

    chapter: str
    files: bytes
    origin: str


@dataclass(frozen=True)
class Outcome:
    """What grading one submission produced."""

    student: str
    autograded: bytes | None  # the autograded folder (a tar), None if nothing was graded
    report: str | None  # what the guards found, None if they wrote nothing
    why: str  # "" when graded; else why not (sandbox.NOT_STARTED first: the grader's failure)
    worker: str
    seconds: float


@dataclass
class Graded:
    """What one chapter's autograde run did: who failed and why, who graded whom, who was done."""

    failed: dict[str, str] = field(default_factory=dict)
    graded_by: dict[str, str] = field(default_factory=dict)
    resumed: list[str] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        """Count a recorded outcome: who graded the student, and why it failed if it did."""
        self.graded_by[outcome.student] = outcome.worker
        if outcome.why:
            self.failed[outcome.student] = outcome.why


def save_outcome(outcome: Outcome, path: Path) -> None:
    """Write an outcome as JSON (the autograded tar in base64), atomically."""
    fields = dataclasses.asdict(outcome)
    if outcome.autograded is not None:
        fields["autograded"] = base64.b64encode(outcome.autograded).decode()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(fields))
    partial.replace(path)


def load_outcome(path: Path) -> Outcome:
    """An outcome save_outcome wrote."""
    fields = json.loads(path.read_text())
    if fields["autograded"] is not None:
        fields["autograded"] = base64.b64decode(fields["autograded"])
    return Outcome(**fields)


def pack(folder: Path) -> bytes:
    """A folder's content as a gzipped tar."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(folder, arcname=".")
    return buffer.getvalue()


def unpack(data: bytes, folder: Path) -> None:
    """Extract what `pack` made into `folder` (created): files and folders only, none outside it
    (a student's kernel may have left links in what a worker packed)."""
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        members = [
            member
            for member in archive.getmembers()
            if (member.isfile() or member.isdir())
            and not Path(member.name).is_absolute()
            and ".." not in Path(member.name).parts
        ]
        # Python's own check as well where it has one (3.11.4 and later).
        data_filter = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        archive.extractall(folder, members=members, **data_filter)  # type: ignore[arg-type]


def course(root: Path, chapter: str) -> Course:
    """The chapter's grading files: the course config, the chapter's source folder (without what
    its runs generated) and a gradebook that knows only this chapter (released in a copy)."""
    with tempfile.TemporaryDirectory(prefix="scalelab-course-") as scratch:
        copy = Path(scratch)
        (copy / "grader").mkdir()
        shutil.copyfile(root / CONFIG, copy / CONFIG)
        ignored = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", *GENERATED)
        shutil.copytree(root / "solutions" / chapter, copy / "solutions" / chapter, ignore=ignored)
        nbgrader(copy, "generate_assignment", chapter, "--force")
        shutil.rmtree(copy / "notebooks")  # the release: autograde does not read it
        return Course(chapter, pack(copy), str(root))


def submission(root: Path, chapter: str, student: str) -> bytes:
    """A student's submitted folder of `chapter`, packed."""
    return pack(root / "grader" / "submitted" / student / chapter)


def digest(root: Path, chapter: str, student: str) -> str:
    """What a grade depends on: the hash of the submitted notebook and of the chapter's source
    notebooks (whose tests grade it), so that changed tests grade everyone again."""
    notebook = root / "grader" / "submitted" / student / chapter / f"{chapter}.ipynb"
    hashed = hashlib.sha256(notebook.read_bytes())
    for source in sorted((root / "solutions" / chapter).glob("*.ipynb")):
        hashed.update(source.read_bytes())
    return hashed.hexdigest()


def already_graded(root: Path, chapter: str, student: str) -> bool:
    """Whether this exact submission was graded and recorded (a resumed run skips it)."""
    done = root / "grader" / "autograded" / student / chapter / DONE
    return done.is_file() and done.read_text() == digest(root, chapter, student)


def triage(
    root: Path, chapter: str, students: list[str]
) -> tuple[list[str], dict[str, str], list[str]]:
    """(to grade, {student: why not graded}, already graded as handed in): a missing or unreadable
    notebook is not graded (it scores 0; an old report of it is removed)."""
    todo, failed, resumed = [], {}, []
    for student in students:
        notebook = root / "grader" / "submitted" / student / chapter / f"{chapter}.ipynb"
        if not notebook.is_file():
            failed[student] = "nothing handed in"
        elif problem := submissions.is_notebook(notebook.read_bytes()):
            reports.report_path(root / "grader" / "reports", chapter, student).unlink(
                missing_ok=True
            )
            failed[student] = f"not a readable notebook ({problem})"
        elif already_graded(root, chapter, student):
            resumed.append(student)
        else:
            todo.append(student)
    return todo, failed, resumed


def worker_name() -> str:
    """The Dask worker or Kubernetes pod running this task, else this machine and thread."""
    try:
        from distributed import get_worker

        return f"dask worker {get_worker().address}"
    except (ImportError, ValueError):  # not inside a Dask worker
        pass
    if "KUBERNETES_SERVICE_HOST" in os.environ:
        return f"Kubernetes pod {socket.gethostname()}"
    return f"{socket.gethostname()} (local pool, thread {threading.get_ident() % 10000})"


def grade(course: Course, student: str, handed_in: bytes, options: Sequence[str]) -> Outcome:
    """On a worker: grade one submission in a fresh copy of the course; what came out."""
    started = time.monotonic()
    chapter = course.chapter
    with tempfile.TemporaryDirectory(prefix="scalelab-grade-") as scratch:
        root = Path(scratch) / "course"
        unpack(course.files, root)
        unpack(handed_in, root / "grader" / "submitted" / student / chapter)
        args = ["autograde", chapter, "--force", f"--student={student}", *options]
        log = nbgrader(root, *args, strict=False, env={ORIGIN: course.origin})
        graded = root / "grader" / "autograded" / student / chapter
        report = reports.report_path(root / "grader" / "reports", chapter, student)
        why = ""
        if not (graded / f"{chapter}.ipynb").is_file():
            # nbgrader logs a stopped cell or a dead kernel as errors, and still grades: a
            # submission failed only if no autograded notebook came out.
            if sandbox.NOT_STARTED in log:
                why = log[log.index(sandbox.NOT_STARTED) :].splitlines()[0]
            else:
                errors = [line for line in log.splitlines() if "ERROR" in line]
                why = (errors or ["nbgrader failed"])[-1][:300]
        return Outcome(
            student=student,
            autograded=None if why else pack(graded),
            report=report.read_text() if report.is_file() else None,
            why=why,
            worker=worker_name(),
            seconds=time.monotonic() - started,
        )


def record(root: Path, chapter: str, outcome: Outcome, submitted_digest: str) -> None:
    """In the instructor's process: put a worker's result into the course (the autograded folder,
    the report, the grades in the gradebook). A submission the sandbox could not grade leaves the
    gradebook without it (the grader's failure, not the student's)."""
    import nbformat
    from nbgrader.api import Gradebook
    from nbgrader.preprocessors import AssignLatePenalties, SaveAutoGrades
    from nbgrader.utils import parse_utc

    student = outcome.student
    target = root / "grader" / "autograded" / student / chapter
    shutil.rmtree(target, ignore_errors=True)
    report = reports.report_path(root / "grader" / "reports", chapter, student)
    if outcome.report is None:
        report.unlink(missing_ok=True)
    else:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(outcome.report)
    if outcome.autograded is None:
        if outcome.why.startswith(sandbox.NOT_STARTED):
            forget_submission(root, chapter, student)
        return
    unpack(outcome.autograded, target)
    stamp = root / "grader" / "submitted" / student / chapter / "timestamp.txt"
    timestamp = parse_utc(stamp.read_text().strip()) if stamp.is_file() else None
    database = f"sqlite:///{root / 'grader' / 'gradebook.db'}"
    with Gradebook(database) as gradebook, warnings.catch_warnings():
        # nbgrader's add_submission links the new row before adding it to the session, which
        # SQLAlchemy 2 warns about (harmless: nbgrader adds it next, as in its own autograde).
        warnings.filterwarnings("ignore", r"Object of type <\w+> not in session")
        gradebook.update_or_create_student(student)
        gradebook.update_or_create_submission(chapter, student, timestamp=timestamp)
    notebook = nbformat.read(target / f"{chapter}.ipynb", as_version=4)  # type: ignore[no-untyped-call]
    resources = {
        "nbgrader": {
            "notebook": chapter,
            "assignment": chapter,
            "student": student,
            "db_url": database,
        }
    }
    for preprocessor in (SaveAutoGrades(), AssignLatePenalties()):
        notebook, resources = preprocessor.preprocess(notebook, resources)
    (target / DONE).write_text(submitted_digest)


def forget_submission(root: Path, chapter: str, student: str) -> None:
    """Remove `student`'s submission of `chapter` (and its grades) from the gradebook."""
    from nbgrader.api import Gradebook, MissingEntry

    database = f"sqlite:///{root / 'grader' / 'gradebook.db'}"
    with Gradebook(database) as gradebook, contextlib.suppress(MissingEntry):
        gradebook.remove_submission(chapter, student)
