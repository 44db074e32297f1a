"""The Kubernetes route: `scalelab grading k8s-job` writes a chapter's grading onto a shared volume
with an Indexed Job valid for Kubernetes (its own schemas, offline); each pod's command, run here
with its JOB_COMPLETION_INDEX, grades its student; `k8s-collect` records them all and finishes as
`grade` does. A pod that never wrote a result leaves its student ungraded, and said so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from course import ASSIGNMENT, edited, make_course

from scalelab import grading

REPO = Path(__file__).resolve().parents[2]
KUBERNETES = "1.35.0"


def scalelab(root: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "scalelab", "grading", *args],
        cwd=root,
        env=os.environ | {"SCALELAB_COURSE_ROOT": str(root)} | (env or {}),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


def test_an_indexed_job_grades_one_student_per_pod_and_collect_records_them(tmp_path: Path):
    import kubernetes_validate

    root = tmp_path / "course"
    solution, release = make_course(REPO, root)
    deserved = {"full": 3, "untouched": 0, "lost": 3}
    for student, source in [("full", solution), ("untouched", release), ("lost", solution)]:
        target = root / "grader" / "submitted" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        target.parent.mkdir(parents=True)
        target.write_text(json.dumps(edited(source)))
    volume = tmp_path / "volume"
    said = scalelab(root, "k8s-job", ASSIGNMENT, str(volume), "--claim", "grading")
    assert "kubectl apply -f" in said and "3 submissions" in said, said

    (job,) = yaml.safe_load_all((volume / ASSIGNMENT / "job.yaml").read_text())
    kubernetes_validate.validate(job, KUBERNETES, strict=True)
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == 3
    (container,) = spec["template"]["spec"]["containers"]
    (mount,) = container["volumeMounts"]
    assert spec["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "grading"

    # Each pod as Kubernetes runs it: the container's command, the volume where it is mounted
    # (here: its folder), its index in the environment. The pod of "lost" fails every try.
    students = [s for s, _ in json.loads((volume / ASSIGNMENT / "students.json").read_text())]
    for index, student in enumerate(students):
        if student == "lost":
            continue
        command = [*container["command"], *container["args"]]
        assert command[:2] == ["python", "-m"], command
        args = [part.replace(mount["mountPath"], str(volume)) for part in command[4:]]
        scalelab(root, *args, env={"JOB_COMPLETION_INDEX": str(index)})

    collect = [sys.executable, "-m", "scalelab", "grading", "k8s-collect", ASSIGNMENT, str(volume)]
    env = os.environ | {"SCALELAB_COURSE_ROOT": str(root)}
    done = subprocess.run(collect, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stdout[-2000:]  # "lost" is the grader's failure
    assert "1 of 3 students" in done.stderr and "kubectl logs" in done.stderr, done.stderr
    scores = grading.scores(root, ASSIGNMENT)
    assert {s: scores[s].points for s in scores} == {"full": 3, "untouched": 0}
    summary = (root / "grader" / f"summary-{ASSIGNMENT}.txt").read_text()
    assert "full: 3/3 (graded by " in summary, summary
    assert "lost: not graded (no points recorded)" in summary, summary
    assert not (root / "grader" / "grades.csv").exists()  # no 0 for a student the grader lost

    # The pod of "lost" runs again (a new Job, only for what is left): all graded, grades out.
    said = scalelab(root, "k8s-job", ASSIGNMENT, str(volume))
    assert "1 submission of" in said, said
    scalelab(root, "run-index", str(volume / ASSIGNMENT), "--index", "0")
    scalelab(root, "k8s-collect", ASSIGNMENT, str(volume))
    scores = grading.scores(root, ASSIGNMENT)
    assert {s: scores[s].points for s in scores} == deserved
    assert (root / "grader" / "grades.csv").is_file()


@pytest.mark.parametrize("missing", ["--index", "JOB_COMPLETION_INDEX"])
def test_run_index_outside_a_job_says_what_is_missing(tmp_path: Path, missing: str):
    from scalelab.grading import kubernetes

    with pytest.raises(grading.GradingError, match=missing):
        kubernetes.run_index(tmp_path)
