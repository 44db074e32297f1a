"""The nbgrader course: solutions/ is the source, notebooks/ the release, state stays in grader/."""

import os
from pathlib import Path

from scalelab.grading.tasks import GENERATED, ORIGIN

c = get_config()  # noqa: F821 (injected by traitlets when it loads this file)

# The course root defaults to the repository; tests point it at a temporary copy.
root = Path(os.environ.get("SCALELAB_COURSE_ROOT", Path(__file__).resolve().parent.parent))

c.CourseDirectory.course_id = "scalelab"
c.CourseDirectory.root = str(root)
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
c.CourseDirectory.submitted_directory = "grader/submitted"
c.CourseDirectory.autograded_directory = "grader/autograded"
c.CourseDirectory.feedback_directory = "grader/feedback"
c.CourseDirectory.db_url = f"sqlite:///{root / 'grader' / 'gradebook.db'}"
# Submissions come from an LMS or a folder (scalelab grading collect), not a shared
# exchange; keeping its folder in the course stops the formgrader warning about a missing one.
c.Exchange.root = str(root / "grader" / "exchange")
# What a chapter writes next to its notebook never goes into the release.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", *GENERATED]

# Students' notebooks are untrusted: scalelab.grading.preprocessors restore every test cell from
# the gradebook (deleted, edited or renamed), limit time per cell and per notebook, survive a dead
# or stuck kernel, cap outputs, keep the answers and the gradebook out of the kernel's reach, and
# write what they found to grader/reports/<chapter>/<student>.txt. nbgrader's commands use them too.
c.Reporting.report_directory = str(root / "grader" / "reports")
c.Autograde.sanitize_preprocessors = [
    "scalelab.grading.preprocessors.startreport.StartReport",
    "nbgrader.preprocessors.ClearOutput",
    "nbgrader.preprocessors.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec",
    "scalelab.grading.preprocessors.restorecells.RestoreCells",
    "nbgrader.preprocessors.CheckCellMetadata",
]
c.Autograde.autograde_preprocessors = [
    "scalelab.grading.preprocessors.guardedexecute.GuardedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
c.OverwriteCells.add_missing_cells = True
# A worker grades in a copy of the course (scalelab.grading.tasks): the course it was copied from is
# out of the kernels' reach as well.
courses = [root, *([Path(os.environ[ORIGIN])] if os.environ.get(ORIGIN) else [])]
c.GuardedExecute.forbidden_paths = [str(r / d) for r in courses for d in ("solutions", "grader")]
# Measured under CI's load (3 notebooks at once on 2 cores): the slowest cell takes 40 s (Chapter 6
# search), the slowest notebook 139 s (Chapter 6, fast mode, as nbgrader runs it). The limits are
# about 3x those: a normal submission never meets them, and an infinite loop costs at most 120 s.
# (nbgrader's default per cell: 30 s; none per notebook.)
c.Execute.timeout = 120
c.GuardedExecute.notebook_timeout = 400
c.Execute.interrupt_on_timeout = True
# Outputs of a busy kernel (servers starting, TensorFlow importing) can lag the cell's reply by more
# than nbclient's 4 s default, which nbgrader turns into a fatal validation error.
c.Execute.iopub_timeout = 30

# Feedback must not reveal hidden tests: autograded notebooks contain them (nbgrader #917, #1363),
# and so do the tracebacks of failed test cells, which quote the lines around the failure.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.ClearHiddenTests",
    "scalelab.grading.preprocessors.hidetesttracebacks.HideTestTracebacks",
    "nbgrader.preprocessors.GetGrades",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
