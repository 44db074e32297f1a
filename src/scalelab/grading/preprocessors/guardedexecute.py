"""GuardedExecute: nbgrader's Execute with time limits per cell and per notebook, recovery from
a dead or stuck kernel, outputs capped in size, and the course's answers and other students' files
off limits to the student's code (the kernel guard); or each notebook in a Docker sandbox.

While grading, the instructor's demonstrations (cells the source notebook marks
`"scalelab": {"demo": true}`, which no test needs) are not run: only a cell whose source is
exactly such a demonstration is passed over, never an answer or a test cell, and the marks are
read from the course's source notebook, not from the submission."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nbformat
from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader import utils
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import Execute
from traitlets import Bool, Integer, List, Unicode

from scalelab.grading import sandbox
from scalelab.grading.preprocessors.reporting import Reporting

# The folder holding the sitecustomize.py that grading kernels (and their subprocesses) import.
KERNEL_GUARD = Path(__file__).resolve().parents[1] / "kernel_guard"
# What a demonstration passed over while grading shows in its output.
NOT_RUN_WHILE_GRADING = (
    "[not run while grading: a demonstration that no test needs. Run the notebook to see it.]\n"
)


def is_demonstration(cell: NotebookNode) -> bool:
    """Whether a cell of the instructor's notebook is marked as a demonstration."""
    return cell.cell_type == "code" and bool(cell.metadata.get("scalelab", {}).get("demo"))


def _error(name: str, message: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=name, evalue=message, traceback=[message])


class GuardedExecute(Reporting, Execute):
    """nbgrader's Execute with a time limit per notebook, recovery from a dead or stuck kernel,
    outputs capped per cell, and a kernel that may not touch the course's answers or grades.

    A test cell the kernel never reached gets an error output, so it scores zero (nbgrader gives
    full points to a test cell without errors, run or not).
    """

    notebook_timeout = Integer(900, help="Seconds for the whole notebook.").tag(config=True)
    max_output_bytes = Integer(2_000_000, help="Output kept per cell, in bytes.").tag(config=True)
    forbidden_paths = List(
        Unicode(), help="Folders the kernel may not open (its own working folder stays open)."
    ).tag(config=True)
    sandbox_image = Unicode(
        "", help="Run each notebook in a container of this image (Docker), not in a local kernel."
    ).tag(config=True)
    sandbox_cpus = Unicode("1", help="docker run --cpus for the sandbox.").tag(config=True)
    sandbox_memory = Unicode("4g", help="docker run --memory for the sandbox.").tag(config=True)
    skip_demonstrations = Bool(
        True, help="Pass over the source notebook's demonstrations (no test needs them)."
    ).tag(config=True)

    def preprocess(
        self, nb: NotebookNode, resources: dict[str, Any]
    ) -> tuple[NotebookNode, dict[str, Any]]:
        self._deadline = time.monotonic() + self.notebook_timeout
        self._stopped = ""
        self._sizes: dict[int, int] = {}
        self.timeout_func = self._cell_timeout
        self._passed_over = self._demonstrations(nb, resources)
        if self.sandbox_image:
            return self._in_container(nb, resources), resources
        handle, name = tempfile.mkstemp(prefix="scalelab-guard-", suffix=".log")
        os.close(handle)
        self._guard_report = Path(name)  # the kernel's audit hook appends to it
        try:
            return super().preprocess(nb, resources)
        finally:
            self._report_kernel_findings(resources)

    def _demonstrations(self, nb: NotebookNode, resources: dict[str, Any]) -> set[int]:
        """Indices of `nb`'s cells that are, source for source, the source notebook's
        demonstrations: these are not run while grading. None outside nbgrader's autograde."""
        ids = resources.get("nbgrader", {})
        if not self.skip_demonstrations or not {"assignment", "notebook"} <= set(ids):
            return set()
        course = CourseDirectory(parent=self)
        folder = course.format_path(course.source_directory, ".", ids["assignment"])
        source = Path(folder) / f"{ids['notebook']}.ipynb"
        if not source.is_file():
            return set()
        instructor = nbformat.read(source, as_version=4)
        demos = {cell.source.strip() for cell in instructor.cells if is_demonstration(cell)}
        return {
            index
            for index, cell in enumerate(nb.cells)
            if cell.cell_type == "code"
            and not (utils.is_grade(cell) or utils.is_solution(cell))
            and cell.source.strip() in demos
        }

    def _in_container(self, nb: NotebookNode, resources: dict[str, Any]) -> NotebookNode:
        """Execute `nb` in a sandbox of `sandbox_image`; report what it found."""
        for index in self._passed_over:  # raw cells are not run; restored below
            nb.cells[index].cell_type = "raw"
        try:
            return self._run_in_container(nb, resources)
        finally:
            for index in self._passed_over:
                nb.cells[index].cell_type = "code"
                self._pass_over(nb.cells[index])

    def _run_in_container(self, nb: NotebookNode, resources: dict[str, Any]) -> NotebookNode:
        run = sandbox.run_in_container(
            nb, self.sandbox_image, cpus=self.sandbox_cpus, memory=self.sandbox_memory,
            timeout=self.timeout, notebook_timeout=self.notebook_timeout,
            max_output_bytes=self.max_output_bytes, iopub_timeout=self.iopub_timeout,
        )  # fmt: skip
        for problem in run.problems:
            self.report(resources, problem)
        if run.notebook is not None:
            for index in self._passed_over:
                run.notebook.cells[index] = nb.cells[index]
            return run.notebook
        self.report(resources, f"the sandbox failed ({run.failure})")
        self._stopped = "not run: the sandbox failed"
        for cell in nb.cells:
            self.preprocess_cell(cell, resources, 0)
        return nb

    def _cell_timeout(self, cell: NotebookNode) -> int:
        left = int(self._deadline - time.monotonic())
        return max(1, min(self.timeout, left)) if self.timeout else max(1, left)

    async def async_start_new_kernel(self, **kwargs: Any) -> None:
        cwd = kwargs.get("cwd") or self.resources.get("metadata", {}).get("path") or os.getcwd()
        kwargs["env"] = {
            **os.environ,
            **(kwargs.get("env") or {}),
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(KERNEL_GUARD), os.environ.get("PYTHONPATH", "")])
            ),
            "SCALELAB_GUARD_FORBID": os.pathsep.join(self.forbidden_paths),
            "SCALELAB_GUARD_ALLOW": str(Path(cwd).resolve()),
            "SCALELAB_GUARD_REPORT": str(self._guard_report),
        }
        await super().async_start_new_kernel(**kwargs)

    start_new_kernel = run_sync(async_start_new_kernel)  # nbclient binds its own at class level

    def preprocess_cell(
        self, cell: NotebookNode, resources: dict[str, Any], index: int
    ) -> tuple[NotebookNode, dict[str, Any]]:
        if cell.cell_type != "code":
            return cell, resources
        if not self._stopped and time.monotonic() >= self._deadline:
            self._stop(resources, f"the notebook's time limit ({self.notebook_timeout} s) ran out")
        if self._stopped:
            cell.outputs = [_error("NotRun", self._stopped)] if utils.is_grade(cell) else []
            return cell, resources
        if index in self._passed_over:
            return self._pass_over(cell), resources
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
            if any(out.get("ename") == "CellTimeoutError" for out in cell.outputs):
                self.report(resources, f"cell {index + 1} ran past its time limit and was stopped")
            return cell, resources
        except DeadKernelError:
            cell.outputs.append(_error("KernelDied", "the kernel died running this cell"))
            self._stop(
                resources, f"the kernel died in cell {index + 1} (os._exit, a crash, memory)"
            )
        except CellTimeoutError:
            cell.outputs.append(_error("KernelStuck", "the kernel stopped answering"))
            self._stop(resources, f"the kernel stopped answering in cell {index + 1}")
            run_sync(self.km.shutdown_kernel)(now=True)
        return cell, resources

    @staticmethod
    def _pass_over(cell: NotebookNode) -> NotebookNode:
        cell.outputs = [
            NotebookNode(output_type="stream", name="stdout", text=NOT_RUN_WHILE_GRADING)
        ]
        cell.execution_count = None
        return cell

    def _stop(self, resources: dict[str, Any], why: str) -> None:
        self._stopped = f"not run: {why}"
        self.report(resources, f"{why}; later cells were not run and their tests score 0")

    def output(
        self, outs: list[NotebookNode], msg: dict[str, Any], display_id: str | None, cell_index: int
    ) -> NotebookNode | None:
        out = super().output(outs, msg, display_id, cell_index)
        if out is None or out.output_type == "error":
            return out
        size = len(str(msg.get("content", "")))
        kept = self._sizes.get(cell_index, 0)
        self._sizes[cell_index] = kept + size
        if kept + size <= self.max_output_bytes:
            return out
        outs.remove(out)
        if kept <= self.max_output_bytes:  # first output over the limit: say so, once
            notice = f"[output over {self.max_output_bytes:,} bytes removed by the grader]\n"
            outs.append(NotebookNode(output_type="stream", name="stdout", text=notice))
            self.report(
                self.resources,
                f"cell {cell_index + 1}'s output passed {self.max_output_bytes:,} bytes; "
                "the rest was removed",
            )
            self._sizes[cell_index] = self.max_output_bytes + 1
        return None

    def _report_kernel_findings(self, resources: dict[str, Any]) -> None:
        if not self._guard_report.is_file():
            return
        for line in dict.fromkeys(self._guard_report.read_text().splitlines()):
            kind, _, what = line.partition("\t")
            if kind == "file":
                self.report(resources, f"the code tried to open {what}: refused")
            elif kind == "network":
                self.report(resources, f"the code connected (or tried to) to {what}")
        self._guard_report.unlink()


def execute_here(
    notebook: Path, timeout: int, notebook_timeout: int, max_output_bytes: int, iopub_timeout: int
) -> None:
    """Inside the sandbox: execute one notebook under GuardedExecute's limits, print it (JSON) on
    stdout and each problem found on stderr (`scalelab grading sandbox-run`)."""
    print(sandbox.STARTED, file=sys.stderr, flush=True)
    nb = nbformat.read(notebook, as_version=4)
    executor = GuardedExecute(
        timeout=timeout,
        notebook_timeout=notebook_timeout,
        max_output_bytes=max_output_bytes,
        iopub_timeout=iopub_timeout,
        forbidden_paths=[],
    )
    with contextlib.redirect_stdout(sys.stderr):  # the kernel's noise must not mix with the JSON
        nb, _ = executor.preprocess(nb, {"metadata": {"path": os.getcwd()}})
    for problem in executor.found:
        print(sandbox.PROBLEM + problem, file=sys.stderr)
    sys.stdout.write(nbformat.writes(nb))
