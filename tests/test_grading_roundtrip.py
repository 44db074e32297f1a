"""Real nbgrader per chapter: solution = full marks, untouched = 0, one wrong = minus its points."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from conftest import CHAPTERS, REPO

from scalelab import grading

# The exercise each chapter's "one wrong" submission leaves unanswered, and what it is worth.
WRONG_EXERCISE = {
    "01_savedmodel": ("ex_01_describe", 2),
    "02_tf_serving": ("ex_02_parse", 2),
    "03_rest_vs_grpc": ("ex_03_sweep", 3),
    "04_tflite": ("ex_04_evaluate", 3),
    "05_distribution": ("ex_05_strategy", 3),
}


def test_every_chapter_has_a_one_wrong_case():
    assert sorted(WRONG_EXERCISE) == CHAPTERS


@pytest.mark.slow
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_roundtrip_scores_solution_full_untouched_zero_one_wrong_loses_its_points(
    chapter, tmp_path, record_property
):
    exercise, points = WRONG_EXERCISE[chapter]
    scores = grading.roundtrip(REPO, chapter, exercise, tmp_path)
    for case, score in sorted(scores.items()):
        record_property("summary", f"{chapter} round trip, {case}: {score}")
    full = scores["solution"].max_points
    assert full > 0
    assert scores["solution"].points == full
    assert scores["untouched"].points == 0
    assert scores["one_wrong"].points == full - points
    autograded = tmp_path / "course" / "grader" / "autograded" / "solution" / chapter
    graded = autograded / f"{chapter}.ipynb"
    errors = [
        "".join(cell["source"])[:80]
        for cell in json.loads(graded.read_text())["cells"]
        if any(out.get("output_type") == "error" for out in cell.get("outputs", []))
    ]
    assert errors == [], f"cells of the graded solution raised: {errors}"
    # Feedback returned to students quotes no hidden test.
    grading.nbgrader(tmp_path / "course", "generate_feedback", chapter, "--force")
    for page in (tmp_path / "course" / "grader" / "feedback").rglob("*.html"):
        assert "HIDDEN TESTS" not in page.read_text(), page


def validate(notebook, *flags):
    """`nbgrader validate` as the Validate button runs it: with the course's configuration."""
    shutil.copyfile(REPO / grading.CONFIG, notebook.parent / "nbgrader_config.py")
    done = subprocess.run(
        [sys.executable, "-m", "nbgrader", "validate", *flags, notebook.name],
        cwd=notebook.parent,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return done.stdout + done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_nbgrader_validate_passes_the_solution(chapter, tmp_path):
    notebook = tmp_path / f"{chapter}.ipynb"
    shutil.copyfile(REPO / "solutions" / chapter / notebook.name, notebook)
    log = validate(notebook)
    assert "Success! Your notebook passes all the tests." in log, log[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_nbgrader_validate_invert_fails_every_test_of_the_student_notebook(chapter, tmp_path):
    notebook = tmp_path / f"{chapter}.ipynb"
    shutil.copyfile(REPO / "notebooks" / chapter / notebook.name, notebook)
    log = validate(notebook, "--invert")
    assert "Success! The notebook does not pass any tests." in log, log[-3000:]
    graded = [
        c
        for c in json.loads(notebook.read_text())["cells"]
        if c["metadata"].get("nbgrader", {}).get("grade")
    ]
    assert graded, "the student notebook keeps its graded cells"
