"""A one-minute nbgrader course for grading tests: two exercises, a visible and a hidden test each.

The protections under test (scalelab.grading's preprocessors, the CLI) do not depend on what a
chapter teaches, so a tiny assignment proves them in seconds where a chapter would take minutes per
submission.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import nbformat

from scalelab import grading

ASSIGNMENT = "00_fixture"
POINTS = {"test_00_add": 1, "test_00_mul": 2}

SOLUTION_CELLS: list[tuple[str, str, dict[str, Any]]] = [
    ("markdown", "# A tiny assignment\nTwo functions, each with a test.", {}),
    ("code", "import math", {}),
    (
        "code",
        "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION",
        {"solution": True, "grade": False, "locked": False, "grade_id": "ex_00_add"},
    ),
    (
        "code",
        "assert add(1, 2) == 3\n### BEGIN HIDDEN TESTS\nassert add(-4, 1) == -3\n"
        "### END HIDDEN TESTS",
        {"solution": False, "grade": True, "locked": True, "points": 1, "grade_id": "test_00_add"},
    ),
    (
        "code",
        "def mul(a, b):\n    ### BEGIN SOLUTION\n    return a * b\n    ### END SOLUTION",
        {"solution": True, "grade": False, "locked": False, "grade_id": "ex_00_mul"},
    ),
    (
        "code",
        "assert mul(2, 3) == 6\n### BEGIN HIDDEN TESTS\nassert mul(-2, 5) == -10\n"
        "### END HIDDEN TESTS",
        {"solution": False, "grade": True, "locked": True, "points": 2, "grade_id": "test_00_mul"},
    ),
    ("code", "print('done:', math.pi > 3)", {}),
]
# A demonstration (after the exercises), which the grader passes over.
DEMO = "print('the demonstration ran')"


def solution_notebook() -> nbformat.NotebookNode:
    """The instructor's notebook, in nbgrader's format."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    for kind, source, meta in SOLUTION_CELLS:
        cell = (nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell)(
            source
        )
        if meta:
            cell.metadata["nbgrader"] = {"schema_version": 3, "task": False, **meta}
        nb.cells.append(cell)
    demo = nbformat.v4.new_code_cell(DEMO)
    demo.metadata["scalelab"] = {"demo": True}
    nb.cells.insert(-1, demo)
    return nb


def make_course(repo: Path, root: Path) -> tuple[Path, Path]:
    """A released course at `root` with the repository's nbgrader config: (solution, release)."""
    (root / "grader").mkdir(parents=True)
    shutil.copyfile(repo / grading.CONFIG, root / grading.CONFIG)
    solution = root / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    solution.parent.mkdir(parents=True)
    nbformat.write(solution_notebook(), solution)
    (release,) = grading.release(root, ASSIGNMENT)
    return solution, release


def edited(notebook: Path, **sources: str) -> dict[str, Any]:
    """`notebook` as JSON with the cells named by grade_id given new sources."""
    nb: dict[str, Any] = json.loads(notebook.read_text())
    for cell in nb["cells"]:
        grade_id = cell["metadata"].get("nbgrader", {}).get("grade_id")
        if grade_id in sources:
            cell["source"] = sources.pop(grade_id)
    assert not sources, f"no cells {sorted(sources)}"
    return nb
