"""Grading runs what grading needs: the instructor's demonstrations are passed over, nothing else.

Which cells are demonstrations comes from the course's source notebook, never from a submission:
a submission cannot mark its own cells to skip them, nor have an edited demonstration skipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from course import ASSIGNMENT, DEMO, make_course

from scalelab import grading
from scalelab.grading.preprocessors.guardedexecute import NOT_RUN_WHILE_GRADING

REPO = Path(__file__).resolve().parents[2]
MUL_WRONG = "def mul(a, b):\n    return a + b"


def outputs(root: Path, student: str) -> dict[str, str]:
    """{cell source: its text output} of a student's autograded notebook."""
    graded = root / "grader" / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    return {
        cell.source: "".join(out.get("text", "") for out in cell.outputs)
        for cell in nbformat.read(graded, as_version=4).cells
        if cell.cell_type == "code"
    }


def marked_everywhere(nb: dict[str, Any]) -> dict[str, Any]:
    """The notebook with every code cell marked as a demonstration, as a cheat would."""
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["metadata"]["scalelab"] = {"demo": True}
    return nb


@pytest.mark.slow
def test_grading_passes_over_the_sources_demonstrations_and_nothing_a_submission_marks(tmp_path):
    root = tmp_path / "course"
    solution, release = make_course(REPO, root)
    solved = json.loads(solution.read_text())
    edited_demo = json.loads(solution.read_text())
    for cell in edited_demo["cells"]:
        if "".join(cell["source"]) == DEMO:
            cell["source"] = DEMO + "\nprint('and mine too')"
    wrong = marked_everywhere(json.loads(solution.read_text()))
    for cell in wrong["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("grade_id") == "ex_00_mul":
            cell["source"] = MUL_WRONG
    submissions = {
        "solution": solved,
        "untouched": json.loads(release.read_text()),
        "edited_demo": edited_demo,
        "marks_its_cells": wrong,
    }
    for student, nb in submissions.items():
        path = tmp_path / f"{student}.ipynb"
        path.write_text(json.dumps(nb))
        grading.submit(root, ASSIGNMENT, student, path)
    scores = grading.autograde(root, ASSIGNMENT)

    assert scores["solution"].points == scores["solution"].max_points == 3
    assert scores["untouched"].points == 0
    for student in ("solution", "untouched"):
        assert outputs(root, student)[DEMO] == NOT_RUN_WHILE_GRADING, student
        assert "done: True" in outputs(root, student)["print('done:', math.pi > 3)"]
    # An edited demonstration is the student's own code: it runs.
    ran = outputs(root, "edited_demo")
    assert ran[DEMO + "\nprint('and mine too')"] == "the demonstration ran\nand mine too\n"
    assert scores["edited_demo"].points == 3
    # Marks in a submission change nothing: its wrong answer ran and its test failed.
    assert scores["marks_its_cells"].points == 1
    assert NOT_RUN_WHILE_GRADING in outputs(root, "marks_its_cells")[DEMO]
