"""The Docker sandbox for real (`make test-docker`; skipped where no engine answers): submissions
graded in throwaway containers without network, with the same points and reports as locally."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from course import ASSIGNMENT, make_course
from test_bad_submissions import REPO, cases, section

from scalelab import grading
from scalelab.grading import sandbox

IMAGE = os.environ.get("SCALELAB_SANDBOX_IMAGE", grading.SANDBOX_IMAGE)
STUDENTS = ("full", "untouched", "loop", "death", "deltest", "bigprint", "snoop")

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def sandboxed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if why := sandbox.unavailable(IMAGE):
        pytest.skip(f"no sandbox: {why}")
    root = tmp_path_factory.mktemp("sandbox") / "course"
    solution, release = make_course(REPO, root)
    handed = cases(solution, release, root)
    for student in STUDENTS:
        target = root / "grader" / "submitted" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        target.parent.mkdir(parents=True)
        target.write_text(json.dumps(handed[student][0]))
    command = [
        sys.executable, "-m", "scalelab", "grading", "grade", ASSIGNMENT, "-j", "2",
        "--sandbox", "docker", "--image", IMAGE, "--cell-timeout", "10", "--notebook-timeout", "90",
    ]  # fmt: skip
    env = os.environ | {"SCALELAB_COURSE_ROOT": str(root)}
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=900)
    summary = root / "grader" / f"summary-{ASSIGNMENT}.txt"
    return {
        "root": root,
        "done": done,
        "summary": summary.read_text() if summary.is_file() else "",
        "handed": {s: handed[s] for s in STUDENTS},
    }


def test_sandbox_grades_every_submission_as_locally(sandboxed):
    done, summary = sandboxed["done"], sandboxed["summary"]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"grading in Docker sandboxes of {IMAGE}" in done.stdout
    for student, (_, deserved, said) in sandboxed["handed"].items():
        assert section(summary, student).startswith(f"{deserved:g}/3"), section(summary, student)
        if student != "snoop":  # nothing of the course is in the sandbox to refuse: next test
            assert said in section(summary, student), section(summary, student)


def test_sandbox_has_no_network_no_answers_no_gradebook_no_other_submission(sandboxed):
    assert "192.0.2.1:80" in section(sandboxed["summary"], "snoop")
    graded = sandboxed["root"] / "grader" / "autograded" / "snoop" / ASSIGNMENT
    cells = json.loads((graded / f"{ASSIGNMENT}.ipynb").read_text())["cells"]
    printed = "".join(
        "".join(out.get("text", "")) for cell in cells for out in cell.get("outputs", [])
    )
    assert printed.count("FileNotFoundError") == 2, printed  # the answers, another submission
    assert "OperationalError unable to open database file" in printed, printed
    assert "Network is unreachable" in printed, printed
