"""Real nbgrader per chapter, graded as a class is (demonstrations passed over): the solution
scores full marks, the untouched notebook 0, and both run to the end.

The exhaustive version (marked `exhaustive`, `make test-exhaustive`) autogrades, with real
nbgrader, the solution with each exercise blanked in turn while the others hold correct variants
from tests/chapters/<chapter>.py; `make test` grades every variant, correct and wrong, in one
kernel (tests/test_chapters.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from conftest import CHAPTERS, REPO
from test_chapters import chapter_data, code_exercises

from scalelab import grading
from scalelab.grading.preprocessors.guardedexecute import NOT_RUN_WHILE_GRADING, is_demonstration


def source_notebook(chapter: str) -> Path:
    return REPO / "solutions" / chapter / f"{chapter}.ipynb"


def graded_cells_with_errors(root: Path, student: str, chapter: str) -> dict[str, list[str]]:
    """{"graded": [...], "other": [...]}: each cell that raised (its start, its error), by kind."""
    graded = root / "grader" / "autograded" / student / chapter / f"{chapter}.ipynb"
    found: dict[str, list[str]] = {"graded": [], "other": []}
    for cell in json.loads(graded.read_text())["cells"]:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                kind = "graded" if cell["metadata"].get("nbgrader", {}).get("grade_id") else "other"
                error = f"{out['ename']}: {out['evalue']}"[:1500]
                found[kind].append(f"{''.join(cell['source'])[:80]!r} raised {error}")
    return found


def passed_over(root: Path, student: str, chapter: str) -> int:
    """How many cells of a student's autograded notebook grading passed over (demonstrations)."""
    graded = root / "grader" / "autograded" / student / chapter / f"{chapter}.ipynb"
    return sum(
        any(out.get("text") == NOT_RUN_WHILE_GRADING for out in cell.outputs)
        for cell in nbformat.read(graded, as_version=4).cells
        if cell.cell_type == "code"
    )


@pytest.mark.slow
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_roundtrip_solution_full_untouched_zero_both_run_to_the_end_without_the_demonstrations(
    chapter, tmp_path, record_property
):
    # Graded as a class is: the demonstrations (marked in the source notebook) are passed over.
    # That the solution's own run shows them is proven by its execution (tests/test_chapters.py).
    scores = grading.roundtrip(REPO, chapter, tmp_path)
    solution, untouched = scores["solution"], scores["untouched"]
    record_property("summary", f"{chapter} round trip, solution: {solution}")
    record_property("summary", f"{chapter} round trip, untouched: {untouched}")
    assert solution.points == solution.max_points > 0, solution
    assert untouched.max_points > 0 and untouched.points == 0, untouched
    root = tmp_path / "course"
    demos = sum(is_demonstration(cell) for cell in nbformat.read(source_notebook(chapter), 4).cells)
    for student in ("solution", "untouched"):
        assert passed_over(root, student, chapter) == demos > 0, student
    assert graded_cells_with_errors(root, "solution", chapter) == {"graded": [], "other": []}
    # A stuck student is not blocked: with every exercise unanswered, only exercise and
    # test cells fail; every other cell falls back to the library's reference answers.
    errors = graded_cells_with_errors(root, "untouched", chapter)
    assert errors["graded"], "the untouched notebook's tests fail"
    assert errors["other"] == [], f"cells outside the exercises failed: {errors['other']}"
    # Feedback returned to students quotes no hidden test, nor a traceback through one.
    grading.nbgrader(root, "generate_feedback", chapter, "--force")
    pages = list((root / "grader" / "feedback").rglob("*.html"))
    assert pages
    for page in pages:
        assert "HIDDEN TESTS" not in page.read_text(), page


@pytest.mark.exhaustive
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_real_nbgrader_each_blanked_exercise_loses_only_its_points_correct_variants_full(
    chapter, tmp_path, record_property
):
    """One submission per exercise, blanked as released; the other exercises hold correct
    variants in turn, so every correct variant is also graded by real nbgrader."""
    exercises = list(code_exercises(chapter))
    correct = {g: list(v.values()) for g, v in chapter_data(chapter).CORRECT.items() if v}
    rounds = max(len(exercises), *map(len, correct.values()))
    answers = {}
    for k in range(rounds):
        blank = exercises[k] if k < len(exercises) else None
        replaced = {g: variants[k % len(variants)] for g, variants in correct.items() if g != blank}
        if blank:
            replaced[blank] = code_exercises(chapter)[blank]["stub"]
        answers[f"blank_{blank}" if blank else f"correct_{k}"] = replaced
    scores = grading.roundtrip(REPO, chapter, tmp_path, answers)
    root = tmp_path / "course"
    full = grading.cell_scores(root, chapter, "solution")
    assert sum(full.values()) == scores["solution"].max_points > 0
    problems = []
    for student in answers:
        got = grading.cell_scores(root, chapter, student)
        expected = dict(full)
        if student.startswith("blank_"):
            expected[grading.test_id(student.removeprefix("blank_"))] = 0
        record_property("summary", f"{chapter} exhaustive, {student}: {scores[student]}")
        if got != expected:
            diff = {k: (got.get(k), v) for k, v in expected.items() if got.get(k) != v}
            problems.append(f"{student}: {{cell: (got, expected)}} {diff}")
        errors = graded_cells_with_errors(root, student, chapter)
        if errors["other"]:
            problems.append(f"{student}: cells outside the exercises failed: {errors['other']}")
    assert not problems, "\n".join(problems)


@pytest.mark.exhaustive
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_nbgrader_validate_on_each_released_notebook_says_which_tests_fail(chapter, tmp_path):
    # What a student's `nbgrader validate` (and the Validate button, pressed in a browser in
    # tests/test_browser.py) says of the untouched notebook: it runs and names the failing tests.
    _, notebook = grading.course_copy(REPO, chapter, tmp_path / "course")
    log = grading.nbgrader(tmp_path / "course", "validate", str(notebook), strict=False)
    assert "VALIDATION FAILED ON" in log, log[-3000:]
    assert "NotImplementedError" in log, log[-3000:]
