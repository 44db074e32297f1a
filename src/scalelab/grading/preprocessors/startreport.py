"""StartReport: the first step of autograding forgets what an earlier grading reported."""

from __future__ import annotations

from typing import Any

from nbformat.notebooknode import NotebookNode

from scalelab.grading.preprocessors.reporting import Reporting
from scalelab.grading.reports import report_path


class StartReport(Reporting):
    """First step of autograding: forget what an earlier grading of this submission reported."""

    def preprocess(
        self, nb: NotebookNode, resources: dict[str, Any]
    ) -> tuple[NotebookNode, dict[str, Any]]:
        ids = resources.get("nbgrader", {})
        if self.report_directory and "student" in ids:
            report_path(self.report_directory, ids["assignment"], ids["student"]).unlink(
                missing_ok=True
            )
        return nb, resources
