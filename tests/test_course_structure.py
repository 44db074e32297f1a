"""The course's shape: solutions are the source, notebooks/ is exactly their release."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import CHAPTERS, REPO
from IPython.core.inputtransformer2 import TransformerManager
from test_chapters import bound_names

from scalelab import grading

SOLUTIONS = sorted((REPO / "solutions").glob("[0-9][0-9]_*/*.ipynb"))
RELEASED = sorted((REPO / "notebooks").glob("[0-9][0-9]_*/*.ipynb"))


def cells(path):
    return json.loads(path.read_text())["cells"]


def nbgrader_meta(cell):
    return cell["metadata"].get("nbgrader", {})


def test_every_chapter_has_one_solution_and_one_released_notebook():
    assert CHAPTERS, "no chapters under solutions/"
    assert [p.parent.name for p in SOLUTIONS] == CHAPTERS
    assert [p.parent.name for p in RELEASED] == CHAPTERS


@pytest.mark.parametrize("path", SOLUTIONS + RELEASED, ids=lambda p: str(p.relative_to(REPO)))
def test_notebooks_are_committed_without_outputs(path):
    for cell in cells(path):
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, cell["source"][:80]


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.parent.name)
def test_solution_has_a_fast_parameter_that_defaults_to_the_learner_mode(path):
    tagged = [c for c in cells(path) if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged `parameters`"
    assert "FAST = False" in "".join(tagged[0]["source"])


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.parent.name)
def test_fast_mode_and_the_sizes_enter_through_course_setup_alone(path):
    code = "".join("".join(c["source"]) + "\n" for c in cells(path) if c["cell_type"] == "code")
    assert f'SIZES = course.setup("{path.parent.name}", FAST)' in code
    assert code.count("FAST") == 2, "FAST is the parameter, read once by course.setup"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.parent.name)
def test_every_exercise_has_a_graded_test_named_after_it(path):
    chapter = path.parent.name[:2]
    meta = [nbgrader_meta(c) for c in cells(path) if nbgrader_meta(c)]
    answers = {m["grade_id"] for m in meta if m["solution"] and not m["grade"]}
    tests = {m["grade_id"]: m["points"] for m in meta if m["grade"] and not m["solution"]}
    assert answers, "a chapter has exercises"
    for grade_id in answers:
        assert grade_id.startswith((f"ex_{chapter}_", f"quiz_{chapter}_")), grade_id
        assert f"test_{grade_id.removeprefix('ex_')}" in tests or f"test_{grade_id}" in tests
    assert all(points > 0 for points in tests.values())
    written = [m for m in meta if m["solution"] and m["grade"]]
    assert written, "a chapter ends with a short answer graded by hand"


def test_no_solution_or_hidden_test_text_anywhere_under_notebooks():
    assert grading.leaks(REPO) == []


@pytest.mark.slow
def test_notebooks_folder_is_exactly_what_release_regenerates(tmp_path):
    root = tmp_path / "course"
    (root / "grader").mkdir(parents=True)
    shutil.copyfile(REPO / grading.CONFIG, root / grading.CONFIG)
    shutil.copytree(REPO / "solutions", root / "solutions")
    grading.release(root)
    released = [p for p in (root / "notebooks").rglob("*") if p.is_file()]
    regenerated = sorted(p.relative_to(root) for p in released)
    tracked = subprocess.run(
        ["git", "ls-files", "notebooks"], cwd=REPO, capture_output=True, text=True, check=True
    )
    committed = sorted(Path(line) for line in tracked.stdout.splitlines())
    assert regenerated == committed, "run `make release` and commit notebooks/"
    for relative in regenerated:
        assert (root / relative).read_bytes() == (REPO / relative).read_bytes(), (
            f"{relative} differs from its regeneration: run `make release` and commit notebooks/"
        )


FALLBACKS = {
    "answer",
    "answer_value",
    "run_program",
}  # course.answer(lambda: name, reference), course.answer_value, course.run_program


def loads_outside_fallbacks(tree: ast.Module) -> set[str]:
    """Names a cell reads, except inside the student thunk given to course.answer(_value)."""
    allowed: set[int] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in FALLBACKS
            and node.args
            and isinstance(node.args[0], ast.Lambda)
        ):
            allowed |= {id(n) for n in ast.walk(node.args[0])}
    return {
        n.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and id(n) not in allowed
    }


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.parent.name)
def test_no_later_cell_uses_an_exercise_answer_except_through_the_fallback(path):
    """One stuck exercise costs only its own points: later cells reach its answer only via
    course.answer/answer_value (which fall back to scalelab.answers), tests never."""
    answers: dict[str, str] = {}  # name -> exercise that binds it
    misuse = []
    for cell in cells(path):
        if cell["cell_type"] != "code":
            continue
        meta = nbgrader_meta(cell)
        source = "".join(cell["source"])
        tree = ast.parse(TransformerManager().transform_cell(source))
        if meta.get("solution"):
            answers.update(dict.fromkeys(bound_names(source), meta["grade_id"]))
            continue
        own = meta.get("grade_id", "").removeprefix("test_")
        used = {
            name: exercise
            for name, exercise in answers.items()
            if exercise.removeprefix("ex_") != own
            and name
            in (loads_outside_fallbacks(tree) if not meta.get("grade") else _all_loads(tree))
        }
        misuse += [
            f"{name} (from {ex}) in: {''.join(cell['source'])[:60]!r}" for name, ex in used.items()
        ]
        for name in bound_names(source):  # a later cell that rebinds a name owns it from then on
            if not meta.get("grade"):
                answers.pop(name, None)
    assert not misuse, "\n".join(misuse)


def _all_loads(tree: ast.Module) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.parent.name)
def test_every_written_answer_has_a_rubric_whose_points_add_up(path):
    notebook = cells(path)
    written = [
        (i, nbgrader_meta(c))
        for i, c in enumerate(notebook)
        if nbgrader_meta(c).get("solution") and nbgrader_meta(c).get("grade")
    ]
    assert written
    for index, meta in written:
        question = "".join(notebook[index - 1]["source"])
        rubric = re.search(r"^\*\*Rubric \((\d+) points?\):\*\*(.*)$", question, re.MULTILINE)
        assert rubric, (
            f"{meta['grade_id']}: the question above it has no '**Rubric (N points):**' line"
        )
        items = [int(n) for n in re.findall(r"(\d+) points? for", rubric.group(2))]
        assert int(rubric.group(1)) == sum(items) == meta["points"], (meta["grade_id"], items)


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.parent.name)
def test_demonstrations_are_plain_cells_and_no_cell_grading_runs_reads_their_names(path):
    """Grading passes over cells marked {"scalelab": {"demo": true}}: each must be an ungraded
    code cell, and no cell that grading runs may read a name that only a demonstration bound."""
    only_demos: dict[str, int] = {}  # name -> the demonstration that bound it last
    problems = []
    for index, cell in enumerate(cells(path)):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        if cell["metadata"].get("scalelab", {}).get("demo"):
            if nbgrader_meta(cell):
                problems.append(f"cell {index} is an nbgrader cell marked as a demonstration")
            only_demos.update(dict.fromkeys(bound_names(source), index))
            continue
        tree = ast.parse(TransformerManager().transform_cell(source))
        problems += [
            f"cell {index} reads {name}, bound only by the demonstration in cell {only_demos[name]}"
            for name in sorted(_all_loads(tree) & set(only_demos))
        ]
        for name in bound_names(source):
            only_demos.pop(name, None)
    assert not problems, "\n".join(problems)
