"""Each solution runs once (papermill, fast mode), and that one kernel then proves three things:
the notebook produces what it teaches, its graders accept every correct variant answer and reject
every listed mistake, and the numbers its prose quotes are the run's. What each chapter must show
(check, CORRECT, WRONG, CLAIMS) is in its own module, tests/chapters/<chapter>.py; this file runs
them all the same way.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import json
import shutil
import time
from pathlib import Path
from types import ModuleType
from unittest import mock

import nbformat
import papermill
import papermill.engines
import pytest
from conftest import CHAPTERS, REPO, measuring
from nbclient.exceptions import CellExecutionError
from papermill.clientwrap import PapermillNotebookClient

from scalelab import grading

EXECUTED = REPO / "build" / "executed"
VARIANTS_FILE = "variants.json"
CELL_TIMEOUT = 600  # seconds: a cell that hangs fails the test, naming the cell, instead of CI


def chapter_data(chapter: str) -> ModuleType:
    """tests/chapters/<chapter>.py: check() of its run, CORRECT and WRONG answers, CLAIMS."""
    path = REPO / "tests" / "chapters" / f"{chapter}.py"
    spec = importlib.util.spec_from_file_location(f"chapter_{chapter}", path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def code_exercises(chapter: str) -> dict[str, dict[str, str]]:
    """{grade_id: {"solution", "test", "stub"}} sources of every auto-graded exercise."""
    name = f"{chapter}.ipynb"
    cells = json.loads((REPO / "solutions" / chapter / name).read_text())["cells"]
    by_id = {
        meta["grade_id"]: "".join(cell["source"])
        for cell in cells
        if (meta := cell["metadata"].get("nbgrader", {})).get("grade_id")
    }
    stubs = grading.exercise_stubs(REPO / "notebooks" / chapter / name)
    return {
        grade_id: {
            "solution": by_id[grade_id],
            "test": by_id[grading.test_id(grade_id)],
            "stub": stub,
        }
        for grade_id, stub in stubs.items()
    }


def bound_names(source: str) -> set[str]:
    """Names a cell binds at top level: defs, classes, assignment targets."""
    from IPython.core.inputtransformer2 import TransformerManager

    names = set()
    for node in ast.parse(TransformerManager().transform_cell(source)).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return names


def cases(chapter: str, grade_id: str) -> list[tuple[str, str, bool]]:
    """(description, source, should pass) of every answer to grade for one exercise."""
    data = chapter_data(chapter)
    stub = code_exercises(chapter)[grade_id]["stub"]
    return [
        ("unanswered (as released)", stub, False),
        *((name, source, True) for name, source in data.CORRECT.get(grade_id, {}).items()),
        *((name, source, False) for name, source in data.WRONG.get(grade_id, {}).items()),
    ]


class _GradeVariantsAfterRun(PapermillNotebookClient):
    """Papermill's client, which after a successful run grades the variants in the same kernel."""

    chapter: str | None = None

    def papermill_execute_cells(self) -> None:
        super().papermill_execute_cells()
        if self.chapter and not any(
            cell.metadata.get("papermill", {}).get("exception") for cell in self.nb.cells
        ):
            scratch = nbformat.v4.new_code_cell()
            self.nb.cells.append(scratch)
            try:
                outcomes = self.grade_variants(len(self.nb.cells) - 1)
            finally:
                self.nb.cells.pop()
            (Path.cwd() / VARIANTS_FILE).write_text(json.dumps(outcomes, indent=1))

    def run(self, source: str, index: int) -> str | None:
        """Run `source` in the notebook's kernel; the error it raised, or None."""
        try:
            self.execute_cell(nbformat.v4.new_code_cell(source), index)
        except CellExecutionError as error:
            return f"{error.ename}: {error.evalue}"[:300] or "error"
        return None

    def grade_variants(self, index: int) -> list[dict]:
        outcomes = []
        data = chapter_data(self.chapter)
        # A chapter whose tests need what its last cells stopped (a server) starts it again here.
        before = self.run(getattr(data, "BEFORE_VARIANTS", ""), index)
        assert before is None, f"BEFORE_VARIANTS failed: {before}"
        for grade_id, sources in code_exercises(self.chapter).items():
            names = sorted(bound_names(sources["solution"]))
            forget = f"for _name in {names}: globals().pop(_name, None)"
            for name, source, should_pass in cases(self.chapter, grade_id):
                started = time.perf_counter()
                self.run(forget, index)  # as in a fresh kernel: no value left by the solution
                self.run(source, index)
                error = self.run(sources["test"], index)
                outcomes.append(
                    {
                        "exercise": grade_id,
                        "answer": name,
                        "should_pass": should_pass,
                        "error": error,
                        "seconds": round(time.perf_counter() - started, 2),
                    }
                )
            restored = self.run(sources["solution"], index) or self.run(sources["test"], index)
            assert restored is None, (
                f"{grade_id}: the solution fails after its variants: {restored}"
            )
        self.run(getattr(data, "AFTER_VARIANTS", ""), index)
        return outcomes


class _GradingEngine(papermill.engines.NBClientEngine):
    @classmethod
    def execute_managed_notebook(cls, *args, **kwargs):  # type: ignore[no-untyped-def]
        with mock.patch.object(
            papermill.engines, "PapermillNotebookClient", _GradeVariantsAfterRun
        ):
            return super().execute_managed_notebook(*args, **kwargs)


papermill.engines.papermill_engines.register("scalelab-variants", _GradingEngine)


def execute(chapter: str, variants: bool = True) -> tuple[dict, Path, float]:
    """Execute the chapter's solution and grade its variants (unless told not to): (results, work
    folder, seconds)."""
    getattr(chapter_data(chapter), "BEFORE_RUN", lambda: None)()  # e.g. a tool to install
    workdir = EXECUTED / chapter
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    _GradeVariantsAfterRun.chapter = chapter if variants else None
    quiet = getattr(chapter_data(chapter), "MEASURES_LATENCY", False)  # see conftest.measuring
    try:
        with measuring() if quiet else contextlib.nullcontext():
            started = time.perf_counter()  # once no crowding test runs
            papermill.execute_notebook(
                REPO / "solutions" / chapter / f"{chapter}.ipynb",
                workdir / f"{chapter}.ipynb",
                parameters={"FAST": True},
                cwd=workdir,
                kernel_name="python3",
                progress_bar=False,
                engine_name="scalelab-variants",
                execution_timeout=CELL_TIMEOUT,
            )
    finally:
        _GradeVariantsAfterRun.chapter = None
    results = json.loads((workdir / "results.json").read_text())
    return results, workdir, time.perf_counter() - started


def test_every_chapter_has_output_checks_and_answer_variants():
    for chapter in CHAPTERS:
        data = chapter_data(chapter)
        assert callable(getattr(data, "check", None)), f"{chapter}: no check(results, workdir)"
        for grade_id in code_exercises(chapter):
            assert data.WRONG.get(grade_id), f"{chapter}: no wrong answer to {grade_id} is tried"
            if grade_id.startswith("ex_"):
                assert len(data.CORRECT.get(grade_id, {})) >= 2, f"{chapter}: {grade_id}"
        unknown = (set(data.CORRECT) | set(data.WRONG)) - set(code_exercises(chapter))
        assert not unknown, f"{chapter}: variants for no exercise: {unknown}"


@pytest.mark.slow
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_solution_runs_records_its_results_grades_every_variant_fairly_and_quotes_its_numbers(
    chapter, subtests, record_property, pytestconfig
):
    """One execution per chapter; each thing it proves is a subtest that fails on its own."""
    variants = not pytestconfig.getoption("--no-variants")
    results, workdir, seconds = execute(chapter, variants)
    record_property("executed_notebook", chapter)
    graded = "with variants" if variants else "variants not graded: --no-variants"
    record_property("summary", f"{chapter} executed in {seconds:.0f} s (fast mode, {graded})")
    with subtests.test("what the notebook recorded, and nothing on stderr"):
        chapter_data(chapter).check(results, workdir)
        notebook = json.loads((workdir / f"{chapter}.ipynb").read_text())
        stderr = [
            "".join(output["text"])
            for cell in notebook["cells"]
            for output in cell.get("outputs", [])
            if output.get("name") == "stderr"
        ]
        assert stderr == [], f"the notebook wrote to stderr: {stderr[:2]}"
    outcomes = json.loads((workdir / VARIANTS_FILE).read_text()) if variants else []
    for grade_id in code_exercises(chapter) if variants else []:
        with subtests.test(f"graders of {grade_id} accept every correct answer, reject mistakes"):
            mine = [o for o in outcomes if o["exercise"] == grade_id]
            assert len(mine) == len(cases(chapter, grade_id))
            unfair = [
                f"{o['answer']!r}: "
                + (f"rejected ({o['error']})" if o["should_pass"] else "accepted")
                for o in mine
                if (o["error"] is None) != o["should_pass"]
            ]
            assert not unfair, f"{grade_id} graded unfairly: " + "; ".join(unfair)
    with subtests.test("numbers quoted in the prose are the run's"):
        notebook = json.loads((REPO / "solutions" / chapter / f"{chapter}.ipynb").read_text())
        prose = "\n".join(
            "".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "markdown"
        )
        wrong = []
        for quote, (value, low, high) in chapter_data(chapter).CLAIMS.items():
            assert quote in prose, f"{chapter}: the prose no longer says {quote!r}: update CLAIMS"
            if not low <= value(results) <= high:
                wrong.append(
                    f"{quote!r}: the run gives {value(results):.3g}, not in [{low}, {high}]"
                )
        assert not wrong, f"{chapter}: " + "; ".join(wrong)
