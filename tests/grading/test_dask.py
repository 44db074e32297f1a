"""Grading through scalelab.grading.tasks on any executor: a Dask worker killed mid-run loses no
grade and grades no one twice, an interrupted run resumes without regrading what is done, and a
cluster that does not answer stops the command before anyone is graded, saying what to start.
(Every bad submission scores the same on a Dask cluster as in the local pool: test_bad_submissions.)
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from conftest import crowding
from course import ASSIGNMENT, edited, make_course

from scalelab import grading
from scalelab.grading import executors

REPO = Path(__file__).resolve().parents[2]
distributed = pytest.importorskip("distributed")


def hand_in(root: Path, student: str, notebook: dict) -> None:
    target = root / "grader" / "submitted" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(notebook))


@pytest.fixture
def course(tmp_path: Path) -> tuple[Path, Path, Path]:
    root = tmp_path / "course"
    solution, release = make_course(REPO, root)
    return root, solution, release


def test_a_worker_killed_mid_run_loses_no_grade_and_grades_no_one_twice(course):
    root, solution, release = course
    slow = "import time\ntime.sleep(3)\ndef mul(a, b):\n    return a * b"
    deserved = {}
    for index in range(6):
        full = index % 2 == 0
        hand_in(root, f"s{index}", edited(solution, ex_00_mul=slow) if full else edited(release))
        deserved[f"s{index}"] = 3.0 if full else 0.0
    with (
        crowding(),
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as dask,
        distributed.Client(dask) as client,
    ):
        pids = client.run(os.getpid)  # {worker address: its process id}
        victim = next(iter(pids.values()))

        def kill_once_grading() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not any(client.processing().values()):
                time.sleep(0.2)
            time.sleep(2)  # inside a task: its nbgrader and kernel are running
            os.kill(victim, signal.SIGKILL)

        killer = threading.Thread(target=kill_once_grading)
        killer.start()
        graded = grading.autograde_students(
            root, ASSIGNMENT, sorted(deserved), scheduler=dask.scheduler_address
        )
        killer.join()
    assert graded.failed == {}, graded.failed
    scores = grading.scores(root, ASSIGNMENT)
    assert {s: score.points for s, score in scores.items()} == deserved
    assert set(graded.graded_by) == set(deserved)  # each recorded once, by the worker that finished
    assert all(by.startswith("dask worker tcp://") for by in graded.graded_by.values())
    with pytest.raises(ProcessLookupError):
        os.kill(victim, 0)  # the worker really died (the cluster's nanny started another)


def test_an_interrupted_run_resumes_without_regrading_what_is_done_until_the_tests_change(
    course,
):
    root, solution, release = course
    hand_in(root, "done", edited(solution))
    hand_in(root, "changed", edited(solution))
    first = grading.autograde_students(root, ASSIGNMENT, ["done", "changed"], workers=2)
    assert set(first.graded_by) == {"done", "changed"} and not first.resumed
    hand_in(root, "changed", edited(release))  # handed in again: graded again
    second = grading.autograde_students(root, ASSIGNMENT, ["done", "changed"], workers=2)
    assert second.resumed == ["done"] and set(second.graded_by) == {"changed"}
    scores = grading.scores(root, ASSIGNMENT)
    assert (scores["done"].points, scores["changed"].points) == (3, 0)
    text, _ = grading.summarize(root, ASSIGNMENT, ["done", "changed"], second)
    assert "done: 3/3 (graded by an earlier run)" in text, text
    assert "changed: 0/3 (graded by " in text and "local pool" in text, text
    source = json.loads(solution.read_text())  # the instructor changes the chapter's notebook
    source["cells"][0]["source"] = "# A tiny assignment, revised"
    solution.write_text(json.dumps(source))
    third = grading.autograde_students(root, ASSIGNMENT, ["done", "changed"], workers=2)
    assert third.resumed == [] and set(third.graded_by) == {"done", "changed"}


def test_a_scheduler_that_does_not_answer_stops_before_grading_and_says_what_to_start(
    course, monkeypatch
):
    root, solution, _ = course
    hand_in(root, "full", edited(solution))
    monkeypatch.setattr(executors, "CONNECT_TIMEOUT", "2s")
    with pytest.raises(grading.GradingError, match="dask scheduler") as error:
        grading.autograde_students(root, ASSIGNMENT, ["full"], scheduler="tcp://127.0.0.1:9")
    assert "grade without --scheduler" in str(error.value)
    assert grading.scores(root, ASSIGNMENT) == {}


def test_a_task_that_raises_is_the_graders_failure_nothing_recorded_and_no_grades_out(
    course, monkeypatch
):
    from scalelab.grading import tasks

    root, solution, _ = course
    hand_in(root, "full", edited(solution))
    hand_in(root, "unlucky", edited(solution))
    grade = tasks.grade

    def flaky(course, student, handed_in, options):
        if student == "unlucky":
            raise OSError("the worker's disk is full")
        return grade(course, student, handed_in, options)

    monkeypatch.setattr(tasks, "grade", flaky)
    with pytest.raises(grading.GradingError, match="1 of 2 students") as error:
        grading.grade(root, ASSIGNMENT, ["full", "unlucky"], 2, "")
    assert "OSError: the worker's disk is full" in str(error.value)
    assert "grade again: only the students left are graded" in str(error.value)
    assert {s: score.points for s, score in grading.scores(root, ASSIGNMENT).items()} == {"full": 3}
    assert not (root / "grader" / "grades.csv").exists()
