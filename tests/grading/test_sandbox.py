"""The Docker sandbox for real (`make test-docker`; skipped where no engine answers): submissions
graded in throwaway containers without network, with the same points and reports as locally.
A sandbox that cannot start (no engine, an interpreter its user cannot run) grades nobody: it is
the grader's failure, not the students', and the command says so (those tests need no engine)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from course import ASSIGNMENT, make_course
from test_bad_submissions import REPO, cases, section

from scalelab import grading
from scalelab.grading import sandbox

IMAGE = os.environ.get("SCALELAB_SANDBOX_IMAGE", grading.SANDBOX_IMAGE)
STUDENTS = ("full", "untouched", "loop", "death", "deltest", "bigprint", "snoop")
GRADE = [sys.executable, "-m", "scalelab", "grading", "grade", ASSIGNMENT, "--sandbox", "docker"]
NO_ENGINE = "unix:///nonexistent/docker.sock"


def handed_in(root: Path, students: tuple[str, ...]) -> dict[str, tuple[Any, float, str]]:
    """A released course at `root` with the `students`' submissions filed: their cases."""
    solution, release = make_course(REPO, root)
    handed = cases(solution, release, root)
    for student in students:
        target = root / "grader" / "submitted" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        target.parent.mkdir(parents=True)
        target.write_text(json.dumps(handed[student][0]))
    return {s: handed[s] for s in students}


def grade_command(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`grade` run on the course at `root`, with `env` added to the environment."""
    env = os.environ | {"SCALELAB_COURSE_ROOT": str(root)} | env
    return subprocess.run(
        [*GRADE, *args], cwd=root, env=env, capture_output=True, text=True, timeout=900
    )


def assert_nobody_graded(root: Path) -> None:
    """Nothing recorded: no submission in the gradebook, no graded notebook, no grades.csv."""
    assert grading.scores(root, ASSIGNMENT) == {}
    assert not list((root / "grader" / "autograded").glob("*/*/*.ipynb"))
    assert not (root / "grader" / "grades.csv").exists()


@pytest.fixture(scope="module", params=["local pool", "dask cluster"])
def sandboxed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The students graded in sandboxes by one `grade` command, from the local pool or from a
    two-worker Dask LocalCluster."""
    if why := sandbox.unavailable(IMAGE):
        pytest.skip(f"no sandbox: {why}")
    root = tmp_path_factory.mktemp("sandbox") / "course"
    handed = handed_in(root, STUDENTS)
    limits = ["-j", "2", "--image", IMAGE, "--cell-timeout", "30", "--notebook-timeout", "120"]
    with contextlib.ExitStack() as stack:
        if request.param == "dask cluster":
            from distributed import LocalCluster

            cluster = stack.enter_context(
                LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0")
            )
            limits += ["--scheduler", cluster.scheduler_address]
        done = grade_command(root, *limits)
    summary = root / "grader" / f"summary-{ASSIGNMENT}.txt"
    return {
        "on": request.param,
        "root": root,
        "done": done,
        "summary": summary.read_text() if summary.is_file() else "",
        "handed": handed,
    }


@pytest.mark.docker
@pytest.mark.xdist_group("sandboxed")  # one graded course, on one worker
def test_sandbox_grades_every_submission_as_locally(sandboxed):
    done, summary = sandboxed["done"], sandboxed["summary"]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"grading in Docker sandboxes of {IMAGE}" in done.stdout
    by = "(graded by dask worker tcp://" if sandboxed["on"] == "dask cluster" else "(local pool"
    assert by in section(summary, "full"), section(summary, "full")
    for student, (_, deserved, said) in sandboxed["handed"].items():
        assert section(summary, student).startswith(f"{deserved:g}/3"), section(summary, student)
        if student != "snoop":  # nothing of the course is in the sandbox to refuse: next test
            assert said in section(summary, student), section(summary, student)


@pytest.mark.docker
@pytest.mark.xdist_group("sandboxed")
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


@pytest.fixture
def broken_image() -> Any:
    """A copy of IMAGE whose Python binary only root may run (mode 700)."""
    if why := sandbox.unavailable(IMAGE):
        pytest.skip(f"no sandbox: {why}")
    name, tag = f"scalelab-break-{os.getpid()}", f"scalelab/broken-sandbox:{os.getpid()}"
    lock = "import os, sys; os.chmod(os.path.realpath(sys.executable), 0o700)"
    docker = ["docker", "run", "--name", name, "--user", "0", "--entrypoint", "python", IMAGE]
    subprocess.run([*docker, "-c", lock], check=True, capture_output=True)
    subprocess.run(["docker", "commit", name, tag], check=True, capture_output=True)
    subprocess.run(["docker", "rm", name], check=True, capture_output=True)
    yield tag
    subprocess.run(["docker", "rmi", tag], capture_output=True)


@pytest.mark.docker
def test_image_whose_python_the_sandbox_user_cannot_run_grades_nobody(broken_image, tmp_path):
    root = tmp_path / "course"
    handed_in(root, ("full", "untouched"))
    done = grade_command(root, "--image", broken_image)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "nobody was graded: the sandbox cannot start" in done.stderr, done.stderr
    assert "permission denied" in done.stderr.lower(), done.stderr  # docker's own words
    assert "--sandbox local" in done.stderr  # how to fix it
    assert_nobody_graded(root)
    # Past the check (the image broke mid-run): each student is left ungraded, not given 0.
    with pytest.raises(grading.GradingError, match=r"2 of 2 students .* were not graded"):
        grading.grade(root, ASSIGNMENT, ["full", "untouched"], 2, broken_image)
    assert_nobody_graded(root)


def test_no_engine_with_sandbox_docker_grades_nobody_and_says_why(tmp_path):
    root = tmp_path / "course"
    handed_in(root, ("full",))
    done = grade_command(root, "--image", IMAGE, DOCKER_HOST=NO_ENGINE)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Docker" in done.stderr, done.stderr  # no engine answers (or no client)
    assert "--sandbox local" in done.stderr
    assert_nobody_graded(root)


def test_engine_gone_mid_run_leaves_each_student_ungraded_and_the_command_fails(
    tmp_path, monkeypatch
):
    root = tmp_path / "course"
    students = ["full", "untouched"]
    handed_in(root, tuple(students))
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)  # the engine answered the check, then died
    with pytest.raises(grading.GradingError) as failure:
        grading.grade(root, ASSIGNMENT, students, 2, IMAGE)
    said = str(failure.value)
    assert "2 of 2 students of 00_fixture were not graded (full, untouched)" in said, said
    assert "(full, untouched): the sandbox did not start" in said, said
    assert "Docker" in said, said  # docker's own words: no engine answers (or no client)
    assert "grades.csv was not written" in said, said
    assert_nobody_graded(root)
    summary = (root / "grader" / f"summary-{ASSIGNMENT}.txt").read_text()
    for student in students:
        assert section(summary, student).startswith("not graded (no points recorded)"), summary
    assert (root / "grader" / "submitted" / "full" / ASSIGNMENT).is_dir()  # nothing lost
