"""The instructor's workflow over real nbgrader: release, autograde, feedback, export, round trip.

Run `python -m scalelab.grading --help`. Every command works on a course root: a folder with
`solutions/`, `notebooks/` and `grader/nbgrader_config.py` (the repository, or a copy of it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbconvert.preprocessors import Preprocessor

from scalelab import processes

CONFIG = Path("grader") / "nbgrader_config.py"
SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN HIDDEN TESTS")


class GradingError(RuntimeError):
    """nbgrader failed; the message carries the end of its log."""


@dataclass(frozen=True)
class Score:
    """Autograded points of one submission, and whether written answers still await a grader."""

    points: float
    max_points: float
    needs_manual_grade: bool

    def __str__(self) -> str:
        pending = ", written answers to grade by hand" if self.needs_manual_grade else ""
        return f"{self.points:g}/{self.max_points:g} autograded points{pending}"


class HideTestTracebacks(Preprocessor):
    """Feedback: a failed test shows its error, not a traceback that quotes hidden tests."""

    enabled = True  # nbconvert preprocessors are off unless enabled

    def preprocess_cell(self, cell, resources, index):  # type: ignore[no-untyped-def]
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("grade"):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = [f"{output['ename']}: {output['evalue']}"]
        return cell, resources


def find_course_root(start: Path | None = None) -> Path:
    """The nearest folder at or above `start` (default: cwd) holding grader/nbgrader_config.py."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG).is_file():
            return folder
    raise GradingError(f"No {CONFIG} found in {here} or above: run this inside the course folder.")


def chapters(root: Path) -> list[str]:
    """Assignment ids, one per numbered folder under solutions/ (01_savedmodel, ...)."""
    return sorted(p.name for p in (root / "solutions").glob("[0-9][0-9]_*") if p.is_dir())


def nbgrader(root: Path, *args: str, timeout: float = 1800) -> str:
    """Run one nbgrader command on the course at `root`; return its log, raise if it failed."""
    env = {
        **os.environ,
        "SCALELAB_COURSE_ROOT": str(root),
        # nbgrader starts `alembic` by name: make this environment's scripts findable.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    # jsonschema's IRI check compiles a grammar on import (~2 s a process); nbgrader never needs it.
    command = processes.python_module("nbgrader", args, skip=["rfc3987_syntax"])
    what = f"`nbgrader {' '.join(args)}`"
    done = processes.run(
        command, what, env=env, cwd=root / "grader", timeout=timeout, lines=25, error=GradingError
    )
    log = done.stdout + done.stderr
    if "[ERROR]" in log or "| ERROR]" in log:  # nbgrader logs some failures and still exits 0
        raise GradingError(f"{what} logged an error:\n{processes.tail(log, 25)}")
    return log


def release(root: Path, chapter: str | None = None) -> list[Path]:
    """Regenerate the student notebooks in notebooks/ from solutions/ (all chapters by default)."""
    released = []
    for name in [chapter] if chapter else chapters(root):
        nbgrader(root, "generate_assignment", name, "--force")
        released += sorted((root / "notebooks" / name).glob("*.ipynb"))
    return released


def leaks(root: Path) -> list[str]:
    """Every place under notebooks/ where solution code or hidden-test text survived."""
    found = []
    for path in sorted((root / "notebooks").rglob("*")):
        if path.is_file():
            text = path.read_text(errors="ignore")
            found += [f"{path.relative_to(root)}: {m}" for m in SOLUTION_MARKERS if m in text]
    return found


def autograde(root: Path, chapter: str) -> dict[str, Score]:
    """Autograde every submission of `chapter` under grader/submitted/ and return their scores."""
    nbgrader(root, "autograde", chapter, "--force")
    return scores(root, chapter)


def scores(root: Path, chapter: str) -> dict[str, Score]:
    """Autograded (code) points per student for `chapter`, read from the gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'grader' / 'gradebook.db'}") as gradebook:
        result = {}
        for submission in gradebook.assignment_submissions(chapter):
            result[submission.student_id] = Score(
                points=sum(nb.code_score for nb in submission.notebooks),
                max_points=sum(nb.max_code_score for nb in submission.notebooks),
                needs_manual_grade=submission.needs_manual_grade,
            )
        return result


def submit(root: Path, chapter: str, student: str, notebook: Path) -> Path:
    """Place `notebook` as `student`'s submission of `chapter`, as nbgrader collects it."""
    target = root / "grader" / "submitted" / student / chapter / f"{chapter}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(notebook, target)
    return target


def test_id(grade_id: str) -> str:
    """The grade_id of the test cell that grades exercise `grade_id` (ex_01_x -> test_01_x)."""
    return f"test_{grade_id.removeprefix('ex_')}"


def exercise_stubs(release_copy: Path) -> dict[str, str]:
    """{grade_id: source} of every code exercise cell, as the student notebook hands it out."""
    return {
        meta["grade_id"]: "".join(cell["source"])
        for cell in json.loads(release_copy.read_text())["cells"]
        if cell["cell_type"] == "code"
        and (meta := cell["metadata"].get("nbgrader", {})).get("solution")
    }


def with_answers(solution: Path, answers: dict[str, str]) -> dict[str, Any]:
    """The solution notebook with the exercise cells named in `answers` replaced by their source."""
    solved: dict[str, Any] = json.loads(solution.read_text())
    found = set()
    for cell in solved["cells"]:
        grade_id = cell["metadata"].get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell["source"] = answers[grade_id]
            found.add(grade_id)
    if missing := set(answers) - found:
        raise GradingError(f"No exercise cell with grade_id {sorted(missing)} in {solution}.")
    return solved


def course_copy(repo: Path, chapter: str, root: Path) -> tuple[Path, Path]:
    """A grading course for `chapter` at `root`, released: (solution, student notebook)."""
    (root / "grader").mkdir(parents=True)
    shutil.copyfile(repo / CONFIG, root / CONFIG)
    shutil.copytree(repo / "solutions" / chapter, root / "solutions" / chapter)
    (notebook,) = release(root, chapter)
    return root / "solutions" / chapter / notebook.name, notebook


def roundtrip(
    repo: Path,
    chapter: str,
    workdir: Path,
    answers: dict[str, dict[str, str]] | None = None,
    solution: bool = True,
) -> dict[str, Score]:
    """Autograde `chapter` on a copy of the course in `workdir/course`: the instructor's
    `solution` (unless `solution=False`), the `untouched` student notebook, and one submission
    per entry of `answers` (student id -> {grade_id: replacement source of that exercise cell}).
    """
    root = workdir / "course"
    solved, notebook = course_copy(repo, chapter, root)
    if solution:
        submit(root, chapter, "solution", solved)
    submit(root, chapter, "untouched", notebook)
    for student, replaced in (answers or {}).items():
        variant = workdir / f"{student}.ipynb"
        variant.write_text(json.dumps(with_answers(solved, replaced)))
        submit(root, chapter, student, variant)
    return autograde(root, chapter)


def grade_outputs(root: Path, chapter: str, student: str, executed: Path) -> Score:
    """nbgrader's grade of a notebook already executed (by papermill): scored from its outputs,
    with locked cells checked against the gradebook, without running it again."""
    submit(root, chapter, student, executed)
    steps = {
        "sanitize": [
            "DeduplicateIds",
            "OverwriteKernelspec",
            "OverwriteCells",
            "CheckCellMetadata",
        ],
        "autograde": ["LimitOutput", "SaveAutoGrades", "AssignLatePenalties", "CheckCellMetadata"],
    }
    nbgrader(
        root,
        "autograde",
        chapter,
        "--force",
        f"--student={student}",
        *(
            f"--Autograde.{stage}_preprocessors="
            + json.dumps([f"nbgrader.preprocessors.{name}" for name in names])
            for stage, names in steps.items()
        ),
    )
    return scores(root, chapter)[student]


def cell_scores(root: Path, chapter: str, student: str) -> dict[str, float]:
    """{grade_id: points} of every autograded test cell in one student's graded submission."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'grader' / 'gradebook.db'}") as gradebook:
        submission = gradebook.find_submission(chapter, student)
        return {
            grade.name: grade.score
            for notebook in submission.notebooks
            for grade in notebook.grades
            if grade.cell.cell_type == "code"
        }


def main(argv: list[str] | None = None) -> int:
    """Command line: release | autograde | feedback | export."""
    parser = argparse.ArgumentParser(prog="python -m scalelab.grading", description=__doc__)
    parser.add_argument("command", choices=["release", "autograde", "feedback", "export"])
    parser.add_argument("chapter", nargs="?", help="e.g. 01_savedmodel (default: every chapter)")
    args = parser.parse_args(argv)
    root = find_course_root()
    names = [args.chapter] if args.chapter else chapters(root)
    try:
        if args.command == "release":
            for path in release(root, args.chapter):
                print(f"released {path.relative_to(root)}")
            found = leaks(root)
            if found:
                raise GradingError("solution text leaked into notebooks/:\n" + "\n".join(found))
        elif args.command == "autograde":
            for name in names:
                for student, score in autograde(root, name).items():
                    print(f"{name}  {student}: {score}")
        elif args.command == "feedback":
            for name in names:
                nbgrader(root, "generate_feedback", name, "--force")
            print(f"feedback (hidden tests removed) in {root / 'grader' / 'feedback'}")
        else:
            nbgrader(root, "export", "--to", str(root / "grader" / "grades.csv"))
            print(f"grades written to {root / 'grader' / 'grades.csv'}")
    except GradingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
