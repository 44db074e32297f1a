"""Untrusted submissions, each a real autograde run: the grader finishes, every student gets the
points their work deserves (tests come from the gradebook, never from the submission), each
problem is reported, and no other student's grade or file changes.

One `scalelab grading grade` run (roster, collection from a folder and an LMS zip,
parallel autograde in local kernels, feedback, grades CSV, summary, plot) grades them all; a
second test runs nbgrader's own `nbgrader autograde` to show the protections live in the course's
nbgrader config, not only in our command.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import os
import pickle
import subprocess
import sys
import time
import zipfile
from itertools import takewhile
from pathlib import Path
from typing import Any

import pytest
from conftest import crowding
from course import ASSIGNMENT, edited, make_course

from scalelab import grading
from scalelab.grading import reports

REPO = Path(__file__).resolve().parents[2]
MUL_OK = "def mul(a, b):\n    return a * b"


def without(nb: dict[str, Any], grade_id: str) -> dict[str, Any]:
    nb["cells"] = [
        c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") != grade_id
    ]
    return nb


def meta(nb: dict[str, Any], grade_id: str, new: dict[str, Any] | None) -> dict[str, Any]:
    for cell in nb["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("grade_id") == grade_id:
            if new is None:
                del cell["metadata"]["nbgrader"]
            else:
                cell["metadata"]["nbgrader"].update(new)
    return nb


def cases(solution: Path, release: Path, root: Path) -> dict[str, tuple[Any, float, str]]:
    """{student: (notebook JSON or raw text, points deserved, what the summary must say)}."""
    answers = root / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    other = root / "grader" / "submitted" / "full" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    snoop = "\n".join([
        "import socket, sqlite3",
        "for attempt in [",
        f"    lambda: open({str(answers)!r}).read(),",
        f"    lambda: open({str(other)!r}, 'w').write('{{}}'),",
        f"    lambda: sqlite3.connect({str(root / 'grader' / 'gradebook.db')!r}),",
        "    lambda: socket.create_connection(('192.0.2.1', 80), timeout=0.5),",
        "]:",
        "    try:",
        "        attempt()",
        "    except Exception as error:",
        "        print(type(error).__name__, error)",
        MUL_OK,
    ])  # fmt: skip
    image = (
        "import os\nfrom IPython.display import Image, display\n"
        "display(Image(data=b'\\x89PNG\\r\\n\\x1a\\n' + os.urandom(20_000_000), format='png'))\n"
    )
    return {
        "full": (edited(solution), 3, "3/3"),
        "untouched": (edited(release), 0, "test_00_add failed (NotImplementedError)"),
        "loop": (edited(solution, ex_00_mul="while True:\n    pass"), 1, "past its time limit"),
        "death": (edited(solution, ex_00_mul="import os\nos._exit(1)"), 1, "the kernel died"),
        "stuck": (
            edited(
                solution,
                ex_00_mul="import signal, time\nsignal.signal(signal.SIGINT, "
                "signal.SIG_IGN)\nwhile True:\n    time.sleep(0.1)",
            ),
            1,
            "stopped answering",
        ),
        "deltest": (without(edited(solution), "test_00_mul"), 3, "test_00_mul was missing"),
        "edittest": (
            edited(release, test_00_add="assert True", test_00_mul="pass"),
            0,
            "test_00_add was edited",
        ),
        # Passes the visible test only; its test cell (and so the hidden tests) deleted.
        "hidden": (
            without(edited(solution, ex_00_add="def add(a, b):\n    return 3"), "test_00_add"),
            2,
            "test_00_add was missing",
        ),
        "nometa": (
            meta(
                edited(
                    solution, ex_00_mul="def mul(a, b):\n    return 0", test_00_mul="assert True"
                ),
                "test_00_mul",
                None,
            ),
            1,
            "test_00_mul was missing",
        ),
        "renamed": (
            meta(
                edited(
                    solution, ex_00_add="def add(a, b):\n    return 3", test_00_add="assert True"
                ),
                "test_00_add",
                {"grade_id": "mine"},
            ),
            2,
            "cell mine is not in the gradebook",
        ),
        "bigprint": (
            edited(solution, ex_00_mul="print('x' * 50_000_000)\n" + MUL_OK),
            3,
            "output passed 2,000,000 bytes",
        ),
        "bigimage": (edited(solution, ex_00_mul=image + MUL_OK), 3, "output passed"),
        "snoop": (edited(solution, ex_00_mul=snoop), 3, "tried to open"),
        "invalid": (json.dumps(edited(solution))[:500], 0, "not a readable notebook"),
    }


def section(summary: str, student: str) -> str:
    """The lines the summary gives one student: its score, then its indented notes."""
    first, *rest = summary.split(f"\n  {student}: ", 1)[1].splitlines()
    return "\n".join([first, *takewhile(lambda line: line.startswith("      "), rest)])


@pytest.fixture(scope="module", params=["local pool", "dask cluster"])
def graded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A course whose bad submissions went through one `grade` command, in the local pool or on a
    two-worker Dask LocalCluster; what it left behind. Graded once per run and executor:
    pytest-xdist workers that get tests of this module share it."""
    on = request.param
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")  # set in xdist workers, one per run
    if not run:
        return grade_bad_submissions(tmp_path_factory.mktemp("bad"), on)
    shared = tmp_path_factory.getbasetemp().parent  # this run's folder, above each worker's
    key = f"bad-submissions-{on.split()[0]}-{run}"
    with (shared / f"{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the first worker grades, the others wait, then read
        result = shared / f"{key}.pickle"
        if not result.is_file():
            graded = grade_bad_submissions(tmp_path_factory.mktemp("bad"), on)
            result.write_bytes(pickle.dumps(graded))
        return dict(pickle.loads(result.read_bytes()))


def grade_bad_submissions(base: Path, on: str) -> dict[str, Any]:
    """Hand every bad case in (files, a zip, a double submission), run `grade` once (in the local
    pool, or on a Dask cluster of two worker processes); the results."""
    root = base / "course"
    solution, release = make_course(REPO, root)
    inbox = base / "inbox"
    inbox.mkdir()
    handed = cases(solution, release, root)
    for student, (notebook, _, _) in handed.items():
        text = notebook if isinstance(notebook, str) else json.dumps(notebook)
        (inbox / f"{student}_{ASSIGNMENT}.ipynb").write_text(text)
    # An LMS export: a zip of files named by student, one under a name of its own choosing.
    with zipfile.ZipFile(inbox / "lms-export.zip", "w") as archive:
        archive.writestr(f"wrongname_{ASSIGNMENT}-final(1).ipynb", json.dumps(edited(solution)))
    # Twice: an older full-marks notebook and a newer untouched one: the newer is graded.
    for age, source in [(3600, solution), (60, release)]:
        path = inbox / "twice" / f"attempt-{age}.ipynb"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(edited(source)))
        os.utime(path, (time.time() - age, time.time() - age))
    students = [*handed, "wrongname", "twice", "absent"]
    roster = base / "roster.csv"
    with roster.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "first_name", "last_name", "email"])
        writer.writerows([s, s.title(), "Student", f"{s}@example.org"] for s in students)

    command = [
        sys.executable, "-m", "scalelab", "grading", "grade", ASSIGNMENT, "--roster", str(roster),
        "--submissions", str(inbox), "-j", "3", "--sandbox", "local",
        "--cell-timeout", "5", "--notebook-timeout", "60",
    ]  # fmt: skip
    started = time.monotonic()
    env = os.environ | {"SCALELAB_COURSE_ROOT": str(root)}
    with contextlib.ExitStack() as stack:
        stack.enter_context(crowding())  # three kernels, or a cluster's processes
        if on == "dask cluster":
            from distributed import LocalCluster

            cluster = stack.enter_context(
                LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0")
            )
            command += ["--scheduler", cluster.scheduler_address]
        done = subprocess.run(
            command, cwd=root, capture_output=True, text=True, timeout=600, env=env
        )
    return {
        "on": on,
        "root": root,
        "done": done,
        "seconds": time.monotonic() - started,
        "handed": handed,
        "scores": grading.scores(root, ASSIGNMENT),
        "summary": (root / "grader" / f"summary-{ASSIGNMENT}.txt").read_text()
        if done.returncode == 0
        else "",
    }


def test_grade_command_finishes_and_writes_grades_csv_summary_and_plot(graded):
    done = graded["done"]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "grading in local kernels" in done.stdout
    where = "on the Dask cluster at tcp://" if graded["on"] == "dask cluster" else "on this machine"
    assert where in done.stdout + done.stderr, done.stderr[-2000:]
    root = graded["root"]
    with (root / "grader" / "grades.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {row["student_id"] for row in rows} >= {"full", "absent", "invalid"}
    assert (root / "grader" / "scores.png").stat().st_size > 10_000
    assert "test_00_mul" in graded["summary"] and "full marks" in graded["summary"]


@pytest.mark.parametrize(
    "student",
    ["full", "untouched", "loop", "death", "stuck", "deltest", "edittest", "hidden", "nometa",
     "renamed", "bigprint", "bigimage", "snoop", "invalid"],
)  # fmt: skip
def test_each_bad_submission_gets_exactly_its_points_and_is_reported(graded, student):
    _, deserved, said = graded["handed"][student]
    score = graded["scores"].get(student)
    assert (score.points if score else 0) == deserved, graded["summary"]
    assert said in section(graded["summary"], student), section(graded["summary"], student)


def test_collection_files_wrong_names_grades_the_latest_and_says_so(graded):
    assert graded["scores"]["wrongname"].points == 3
    assert graded["scores"]["twice"].points == 0  # the newer of the two is the untouched one
    summary = graded["summary"]
    assert "filed as 00_fixture.ipynb" in section(summary, "wrongname")
    assert "graded the latest" in section(summary, "twice")
    assert "nothing handed in" in section(summary, "absent")


def test_no_other_students_file_changed_and_the_kernel_reached_no_answer(graded):
    root = graded["root"]
    graded_full = json.loads(
        (root / "grader" / "submitted" / "full" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text()
    )
    assert graded_full["cells"], "the snooping student's write to another submission was refused"
    report = reports.read_report(root / "grader" / "reports", ASSIGNMENT, "snoop")
    assert any("solutions" in line and "refused" in line for line in report), report
    assert any("gradebook.db" in line for line in report), report
    assert any("submitted/full" in line for line in report), report
    assert any("192.0.2.1:80" in line for line in report), report


def test_outputs_are_capped_in_the_autograded_notebook(graded):
    for student in ("bigprint", "bigimage"):
        path = (
            graded["root"] / "grader" / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        )
        assert path.stat().st_size < 3_000_000, (student, path.stat().st_size)


def test_feedback_holds_no_hidden_test(graded):
    pages = list((graded["root"] / "grader" / "feedback").rglob("*.html"))
    assert pages
    for page in pages:
        assert "add(-4, 1)" not in page.read_text() and "HIDDEN" not in page.read_text(), page


def test_nbgraders_own_autograde_applies_the_same_protections(tmp_path):
    root = tmp_path / "course"
    solution, release = make_course(REPO, root)
    handed = cases(solution, release, root)
    for student in ("deltest", "edittest", "renamed", "death", "snoop"):
        target = root / "grader" / "submitted" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        target.parent.mkdir(parents=True)
        target.write_text(json.dumps(handed[student][0]))
    env = os.environ | {"SCALELAB_COURSE_ROOT": str(root)}
    done = subprocess.run(
        [sys.executable, "-m", "nbgrader", "autograde", ASSIGNMENT, "--force"],
        cwd=root / "grader", env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    scores = grading.scores(root, ASSIGNMENT)
    for student in ("deltest", "edittest", "renamed", "death", "snoop"):
        assert scores[student].points == handed[student][1], (student, scores[student])
        report = reports.read_report(root / "grader" / "reports", ASSIGNMENT, student)
        assert any(handed[student][2] in line for line in report), (student, report)
