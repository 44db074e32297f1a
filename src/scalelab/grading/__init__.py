"""The instructor's workflow over real nbgrader: release, autograde, feedback, export, round trip.

Beside it: `preprocessors/` (the course's nbgrader preprocessors, one per module), `sandbox` (each
notebook in a Docker container), `reports` (what the guards found, per student), `submissions`
(collection), `student_copy` (what students get) and `kernel_guard/` (the grading kernels' audit
hook). Its command line is `scalelab grading --help`. Every command works on a course root: a
folder with `solutions/`, `notebooks/` and `grader/nbgrader_config.py` (the repository, or a copy).
"""

from __future__ import annotations

import csv
import json
import shutil
from concurrent.futures import as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from scalelab.grading import executors, reports, sandbox, tasks
from scalelab.grading.commands import CONFIG as CONFIG
from scalelab.grading.commands import GradingError as GradingError
from scalelab.grading.commands import create_gradebook as create_gradebook
from scalelab.grading.commands import nbgrader as nbgrader
from scalelab.grading.tasks import Graded as Graded

# The course image (docker-compose.yml): the library and its reference answers, which hidden tests
# compare with, but no solutions/ and no tests (.dockerignore).
SANDBOX_IMAGE = "scalelab-lab:0.1.0"
SANDBOX_FIX = (
    "Make the image's python runnable by user 65534 from a read-only root with a fresh /tmp "
    "(rebuild it: `scalelab grading student-copy DEST --image TAG`), or grade with "
    "--sandbox local"
)
SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN HIDDEN TESTS")


@dataclass(frozen=True)
class Score:
    """Autograded points of one submission, and whether written answers still await a grader."""

    points: float
    max_points: float
    needs_manual_grade: bool

    def __str__(self) -> str:
        pending = ", written answers to grade by hand" if self.needs_manual_grade else ""
        return f"{self.points:g}/{self.max_points:g} autograded points{pending}"


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
    # nbgrader grades them one after another, each within the course's notebook limit (400 s):
    # the whole run may take that long per submission, and a minute each to start and save
    handed_in = len(list((root / "grader" / "submitted").glob(f"*/{chapter}")))
    nbgrader(root, "autograde", chapter, "--force", timeout=max(1800, 460 * handed_in))
    return scores(root, chapter)


def in_gradebook(root: Path, chapter: str) -> None:
    """Make sure the gradebook knows `chapter`'s tests (a fresh clone's does not): release it."""
    from nbgrader.api import Gradebook, MissingEntry

    if (root / "grader" / "gradebook.db").is_file():
        with Gradebook(f"sqlite:///{root / 'grader' / 'gradebook.db'}") as gradebook:
            try:
                if gradebook.find_assignment(chapter).notebooks:
                    return
            except MissingEntry:
                pass
    release(root, chapter)


def autograde_students(
    root: Path,
    chapter: str,
    students: list[str],
    workers: int = 1,
    image: str = "",
    timeouts: dict[str, int] | None = None,
    scheduler: str | None = None,
) -> Graded:
    """Autograde each student's submission in its own `nbgrader autograde` on a copy of the
    course (scalelab.grading.tasks): `workers` at a time in the local pool, or on the Dask
    cluster at `scheduler`; each in its own kernel, in a container of `image` if given. A
    submission already graded as it is now is not graded again (an interrupted run resumes).
    Unreadable notebooks are not graded: they score 0. A student whose sandbox did not start
    (why starts with sandbox.NOT_STARTED) is left out of the gradebook."""
    in_gradebook(root, chapter)
    options = [f"--GuardedExecute.{key}={value}" for key, value in (timeouts or {}).items()]
    if image:
        options.append(f"--GuardedExecute.sandbox_image={image}")
    todo, failed, resumed = tasks.triage(root, chapter, students)
    graded = Graded(failed, {}, resumed)
    if not todo:
        return graded
    course = tasks.course(root, chapter)
    with (
        executors.pool(workers, scheduler) as (executor, where),
        tqdm(total=len(students), desc=f"autograde {chapter}", unit="student") as bar,
    ):
        bar.update(len(students) - len(todo))
        bar.write(f"grading {len(todo)} submissions of {chapter} on {where}")
        futures = {
            executor.submit(tasks.grade, course, s, tasks.submission(root, chapter, s), options): (
                s,
                tasks.digest(root, chapter, s),
            )
            for s in todo
        }
        for future in as_completed(futures):
            student, digest = futures[future]
            try:
                outcome = future.result()
            except Exception as error:  # the grader's failure (e.g. Dask's KilledWorker)
                graded.failed[student] = f"{tasks.NO_RESULT}: {type(error).__name__}: {error}"
            else:
                tasks.record(root, chapter, outcome, digest)  # here only: one gradebook writer
                graded.add(outcome)
            bar.update()
            bar.set_postfix(failed=len(graded.failed), left=len(students) - bar.n)
    return graded


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


def import_roster(root: Path, roster: Path) -> list[str]:
    """Add the students of a CSV roster (columns: id, and optionally first_name, last_name,
    email) to the gradebook; return their ids."""
    with roster.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns = set(rows[0]) if rows else set()
    if "id" not in columns:
        raise GradingError(
            f"{roster} needs a header row with a column named id (optionally first_name, "
            f"last_name, email); its columns are {sorted(columns) or 'none'}."
        )
    nbgrader(root, "db", "student", "import", str(roster.resolve()))
    return [row["id"] for row in rows]


def gradebook_students(root: Path) -> list[str]:
    """Student ids in the gradebook (from rosters and earlier grading)."""
    from nbgrader.api import Gradebook

    if not (root / "grader" / "gradebook.db").is_file():
        return []
    with Gradebook(f"sqlite:///{root / 'grader' / 'gradebook.db'}") as gradebook:
        return sorted(student.id for student in gradebook.students)


def students(root: Path, chapter: str) -> list[str]:
    """Every student of the gradebook and every one who submitted `chapter`, sorted."""
    return sorted(set(gradebook_students(root)) | set(submitted_students(root, chapter)))


def submitted_students(root: Path, chapter: str) -> list[str]:
    """Students with a folder for `chapter` under grader/submitted/."""
    return sorted(p.parent.name for p in (root / "grader" / "submitted").glob(f"*/{chapter}"))


def failed_tests(root: Path, chapter: str, student: str) -> list[str]:
    """ "grade_id: error" for every test cell that failed in a student's autograded notebook."""
    graded = root / "grader" / "autograded" / student / chapter / f"{chapter}.ipynb"
    if not graded.is_file():
        return []
    found = []
    for cell in json.loads(graded.read_text())["cells"]:
        meta = cell["metadata"].get("nbgrader", {})
        if cell["cell_type"] == "code" and meta.get("grade"):
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error":
                    why = f"{out['ename']}: {out['evalue']}".splitlines()[0][:160].rstrip(": ")
                    found.append(f"{meta['grade_id']} failed ({why})")
                    break
    return found


def summarize(
    root: Path, chapter: str, students: list[str], graded: Graded | None = None
) -> tuple[str, list[float]]:
    """A plain-words summary of one chapter's grading (with the run's failures and who graded
    each student, if given), and each student's score in percent."""
    from nbgrader.api import Gradebook

    graded = graded or Graded()
    failed = graded.failed

    with Gradebook(f"sqlite:///{root / 'grader' / 'gradebook.db'}") as gradebook:
        tests = {
            cell.name: cell.max_score
            for cell in gradebook.find_notebook(chapter, chapter).grade_cells
            if cell.cell_type == "code"
        }
    scored = set(scores(root, chapter)) - set(failed)
    per_cell = {s: cell_scores(root, chapter, s) for s in sorted(scored)}
    total = sum(tests.values())
    lines = [f"{chapter}: {len(students)} students, {len(per_cell)} graded, {total:g} points"]
    for name, most in tests.items():
        got = [cells.get(name) or 0.0 for cells in per_cell.values()]
        mean = sum(got) / len(got) if got else 0.0
        full = sum(g >= most for g in got)
        lines.append(f"  {name:<28} mean {mean:.2f}/{most:g}   full marks {full}/{len(got)}")
    percents = []
    report_dir = root / "grader" / "reports"
    for student in students:
        points = sum((per_cell.get(student) or {}).values())
        said = reports.read_report(report_dir, chapter, f"{student}.collect")
        said += reports.read_report(report_dir, chapter, student)
        if student in failed:
            said.append(f"not graded: {failed[student]}")
        said += failed_tests(root, chapter, student)
        if tasks.graders_failure(failed.get(student, "")):
            lines.append(f"  {student}: not graded (no points recorded)")
        else:
            percents.append(100 * points / total if total else 0.0)
            by = graded.graded_by.get(student) or (
                "an earlier run" if student in graded.resumed else ""
            )
            by = f" (graded by {by})" if by else ""
            lines.append(f"  {student}: {points:g}/{total:g}{by}")
        lines += [f"      - {line}" for line in said]
    return "\n".join(lines), percents


def grade(
    root: Path,
    chapter: str,
    students: list[str],
    workers: int,
    image: str,
    timeouts: dict[str, int] | None = None,
    scheduler: str | None = None,
) -> dict[str, list[float]]:
    """Autograde (in the local pool, or on the Dask cluster at `scheduler`), feedback, grades CSV,
    summary and plot for one chapter; print as it goes. Raise, after the summary and with no
    grades.csv, if a student's sandbox did not start."""
    graded = autograde_students(root, chapter, students, workers, image, timeouts, scheduler)
    return finish(root, chapter, students, graded)


def finish(root: Path, chapter: str, students: list[str], graded: Graded) -> dict[str, list[float]]:
    """After autograding, wherever it ran: feedback, grades CSV and summary for one chapter.
    Raise, after the summary and with no grades.csv, if a student was not graded through the
    grader's fault (a sandbox did not start, a pod failed)."""
    failed = graded.failed
    if list((root / "grader" / "autograded").glob(f"*/{chapter}/*.ipynb")):
        nbgrader(root, "generate_feedback", chapter, "--force")
    ungraded = sorted(s for s, why in failed.items() if tasks.graders_failure(why))
    if not ungraded:  # nbgrader exports 0 points for a student with no submission
        nbgrader(root, "export", "--to", str(root / "grader" / "grades.csv"))
    text, percents = summarize(root, chapter, students, graded)
    (root / "grader" / f"summary-{chapter}.txt").write_text(text + "\n")
    print(text)
    if ungraded:
        raise GradingError(
            f"{len(ungraded)} of {len(students)} students of {chapter} were not graded "
            f"({', '.join(ungraded)}): {failed[ungraded[0]]}. Nothing was recorded for them and "
            "grades.csv was not written; their submissions are kept. "
            + (
                f"{SANDBOX_FIX}, then grade again."
                if failed[ungraded[0]].startswith(sandbox.NOT_STARTED)
                else "Find why in the workers' logs (a Job's pods: kubectl logs), then grade "
                "again: only the students left are graded."
            )
        )
    return {chapter: percents}


def save_plot(root: Path, percent_by_chapter: dict[str, list[float]]) -> Path:
    """grader/scores.png: the score distribution of each graded chapter."""
    import matplotlib

    matplotlib.use("Agg")
    from scalelab import plots

    path = root / "grader" / "scores.png"
    plots.score_distribution(percent_by_chapter).savefig(path, dpi=110)
    return path


def choose_sandbox(choice: str, image: str) -> str:
    """The image to grade in ("" for local kernels), saying which and why; raise, before anyone
    is graded, if the image is there but its sandbox cannot start."""
    why = sandbox.unavailable(image) if choice != "local" else "asked for local kernels"
    if choice == "docker" and why:
        raise GradingError(f"--sandbox docker: {why}. Build the image or use --sandbox local.")
    if why:
        print(f"grading in local kernels (per-cell and per-notebook time limits): {why}")
        return ""
    if problem := sandbox.cannot_start(image):
        raise GradingError(
            f"nobody was graded: the sandbox cannot start: {problem}. {SANDBOX_FIX}."
        )
    print(f"grading in Docker sandboxes of {image}: no network, limited CPU and memory")
    return image
