"""Grading one chapter on Kubernetes: an Indexed Job with one pod per student, on a shared volume.

`prepare` writes the chapter's grading files, the student list and each submission into a folder of
that volume, with the Job's manifest (`job.yaml`); each pod runs `scalelab grading run-index` on
the folder, which grades the student of its index (JOB_COMPLETION_INDEX, set by Kubernetes) with
scalelab.grading.tasks and writes the outcome beside them; `collect` then records every outcome in
the instructor's gradebook, as the local pool and a Dask cluster do. A pod that fails is retried
(`backoffLimitPerIndex`) without stopping the others; a student without an outcome is reported.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from scalelab.grading import tasks
from scalelab.grading.commands import GradingError

MOUNT = "/grading"  # where the pods see the shared volume
INDEX = "JOB_COMPLETION_INDEX"


def prepare(root: Path, chapter: str, students: list[str], volume: Path) -> list[str]:
    """Write what the Job's pods read into `volume`/`chapter`: the grading files, the students to
    grade (in index order, each with its submission's digest) and their submissions. Returns
    those students (none whose notebook is missing, unreadable, or graded as handed in)."""
    folder = volume / chapter
    (folder / "submitted").mkdir(parents=True, exist_ok=True)
    todo, _, _ = tasks.triage(root, chapter, students)
    course = tasks.course(root, chapter)
    (folder / "course.json").write_text(json.dumps({"chapter": chapter, "origin": course.origin}))
    (folder / "course.tar.gz").write_bytes(course.files)
    for student in todo:
        packed = tasks.submission(root, chapter, student)
        (folder / "submitted" / f"{student}.tar.gz").write_bytes(packed)
    digests = [(student, tasks.digest(root, chapter, student)) for student in todo]
    (folder / "students.json").write_text(json.dumps(digests))
    return todo


def job(chapter: str, count: int, image: str, claim: str, parallelism: int = 4) -> dict[str, Any]:
    """The Indexed Job that grades `count` students of `chapter` from the volume of `claim`."""
    name = "grade-" + re.sub(r"[^a-z0-9]+", "-", chapter.lower()).strip("-")
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"app": "scalelab-grading"}},
        "spec": {
            "completionMode": "Indexed",
            "completions": count,
            "parallelism": min(parallelism, count),
            "backoffLimitPerIndex": 2,  # a failed pod is retried; the other indexes go on
            "maxFailedIndexes": count,
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": {"labels": {"app": "scalelab-grading"}},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,  # the kernels need no API access
                    "securityContext": {"runAsUser": 1000, "runAsNonRoot": True},
                    "containers": [
                        {
                            "name": "grade",
                            "image": image,
                            "command": ["python", "-m", "scalelab", "grading", "run-index"],
                            "args": [f"{MOUNT}/{chapter}"],
                            "resources": {
                                "requests": {"cpu": "1", "memory": "2Gi"},
                                "limits": {"memory": "4Gi"},
                            },
                            "volumeMounts": [{"name": "grading", "mountPath": MOUNT}],
                        }
                    ],
                    "volumes": [{"name": "grading", "persistentVolumeClaim": {"claimName": claim}}],
                },
            },
        },
    }


def run_index(folder: Path, index: int | None = None) -> tasks.Outcome:
    """In a pod: grade the student of this index (default: JOB_COMPLETION_INDEX) and write the
    outcome to `folder`/outcomes/<student>.json."""
    if index is None:
        if INDEX not in os.environ:
            raise GradingError(f"no index: pass --index or run in an Indexed Job ({INDEX})")
        index = int(os.environ[INDEX])
    student, _ = json.loads((folder / "students.json").read_text())[index]
    about = json.loads((folder / "course.json").read_text())
    files = (folder / "course.tar.gz").read_bytes()
    course = tasks.Course(about["chapter"], files, about["origin"])
    handed_in = (folder / "submitted" / f"{student}.tar.gz").read_bytes()
    outcome = tasks.grade(course, student, handed_in, [])
    tasks.save_outcome(outcome, folder / "outcomes" / f"{student}.json")
    return outcome


def collect(root: Path, chapter: str, volume: Path, students: list[str]) -> tasks.Graded:
    """Record every outcome the Job wrote into the instructor's course; what grading did, with a
    student whose pod failed every try (no outcome) among the failed."""
    _, failed, resumed = tasks.triage(root, chapter, students)  # before recording: as prepared
    folder = volume / chapter
    graded = tasks.Graded(failed, {}, [])
    prepared = dict(json.loads((folder / "students.json").read_text()))
    for student, digest in prepared.items():
        path = folder / "outcomes" / f"{student}.json"
        if not path.is_file():
            graded.failed[student] = f"{tasks.NO_RESULT}: its pod failed every try"
            continue
        outcome = tasks.load_outcome(path)
        tasks.record(root, chapter, outcome, digest)  # the submission the pod graded
        graded.add(outcome)
    graded.resumed = [s for s in resumed if s not in prepared]
    return graded
