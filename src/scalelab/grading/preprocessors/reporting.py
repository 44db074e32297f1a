"""The base of the course's preprocessors: report a problem to nbgrader's log and to the
student's report (grader/reports/<chapter>/<student>.txt), which the grading summary reads."""

from __future__ import annotations

from typing import Any

from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode

from scalelab.grading.reports import report_path


class Reporting(NbGraderPreprocessor):
    """A preprocessor that reports problems to nbgrader's log and to the student's report."""

    report_directory = Unicode("", help="Folder for per-student problem reports.").tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.found: list[str] = []

    def report(self, resources: dict[str, Any], problem: str) -> None:
        """Log `problem` and append it to the report of the submission being graded."""
        self.log.warning(problem)
        self.found.append(problem)
        ids = resources.get("nbgrader", {})
        if self.report_directory and "student" in ids:
            path = report_path(self.report_directory, ids["assignment"], ids["student"])
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as report:
                report.write(problem.replace("\n", " ") + "\n")
