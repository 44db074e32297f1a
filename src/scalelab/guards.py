"""nbgrader preprocessors that make autograding safe on untrusted submissions.

grader/nbgrader_config.py puts them in nbgrader's own pipeline, so `nbgrader autograde`, the
formgrader's buttons and `python -m scalelab.grading` all get them: test cells restored from the
gradebook (even deleted or renamed ones), a time limit per cell and per notebook, a kernel that dies
or hangs costing only the tests it did not reach, outputs capped in size, and the course's answers
and other students' files off limits to the student's code. What they find goes to the log and to
one report per student (grader/reports/<chapter>/<student>.txt), which the grading summary reads.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import nbformat
from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader import utils
from nbgrader.preprocessors import Execute, NbGraderPreprocessor, OverwriteCells
from traitlets import Integer, List, Unicode

from scalelab.processes import children

# The folder holding the sitecustomize.py that grading kernels (and their subprocesses) import.
KERNEL_GUARD = Path(__file__).with_name("kernel_guard")


def report_path(directory: str | Path, assignment: str, student: str) -> Path:
    """Where the problems found in one student's submission of one assignment are written."""
    return Path(directory) / assignment / f"{student}.txt"


def read_report(directory: str | Path, assignment: str, student: str) -> list[str]:
    """The problems reported for one submission, oldest first (none if it was never graded)."""
    path = report_path(directory, assignment, student)
    return path.read_text().splitlines() if path.is_file() else []


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


class RestoreCells(Reporting, OverwriteCells):
    """OverwriteCells that also restores deleted and renamed test cells, and reports each repair.

    nbgrader's own version drops a cell whose grade_id it does not know but keeps its `grade` flag
    (the notebook then fails validation and the student gets nothing), and crashes re-inserting a
    test cell whose neighbour was deleted too.
    """

    def preprocess(
        self, nb: NotebookNode, resources: dict[str, Any]
    ) -> tuple[NotebookNode, dict[str, Any]]:
        self._resources = resources
        return super().preprocess(nb, resources)

    def report_change(self, name: str, attr: str, old: Any, new: Any) -> None:
        if attr != "checksum":  # sources are compared with what students were given, below
            self.report(self._resources, f"cell {name}: its {attr} was changed; restored")

    def _report_edit(self, cell: NotebookNode, grade_id: str) -> None:
        source = self.gradebook.find_source_cell(grade_id, self.notebook_id, self.assignment_id)
        if source.locked and _released(source.source) != _released(cell.source):
            self.report(self._resources, f"cell {grade_id} was edited; restored from the gradebook")

    def preprocess_cell(
        self, cell: NotebookNode, resources: dict[str, Any], cell_index: int
    ) -> tuple[NotebookNode, dict[str, Any]]:
        meta = cell.metadata.get("nbgrader", {})
        graded = any(meta.get(flag) for flag in ("grade", "solution", "locked", "task"))
        if graded and meta.get("grade_id") not in self._known():
            name = meta.get("grade_id") or f"number {cell_index + 1}"
            self.report(resources, f"cell {name} is not in the gradebook: run as plain code")
            del cell.metadata["nbgrader"]
            return cell, resources
        if meta.get("grade_id"):
            self._report_edit(cell, meta["grade_id"])
        return super().preprocess_cell(cell, resources, cell_index)

    def _known(self) -> set[str]:
        source = self.gradebook.find_notebook(self.notebook_id, self.assignment_id)
        return {cell.name for cell in source.source_cells}

    def add_missing_grade_cells(
        self, nb: NotebookNode, resources: dict[str, Any]
    ) -> tuple[NotebookNode, dict[str, Any]]:
        source = self.gradebook.find_notebook(self.notebook_id, self.assignment_id)
        order = [cell.name for cell in source.source_cells]
        by_name = {cell.name: cell for cell in source.source_cells}
        solutions = {cell.name for cell in source.solution_cells}
        for grade_cell in sorted(source.grade_cells, key=lambda cell: order.index(cell.name)):
            present = [_grade_id(c) for c in nb.cells]
            if grade_cell.name in present:
                continue
            self.report(
                resources, f"cell {grade_cell.name} was missing; restored from the gradebook"
            )
            restored = self.missing_cell_transform(
                by_name[grade_cell.name], grade_cell.max_score, grade_cell.name in solutions
            )
            # After the nearest earlier cell of the source that the submission still has.
            earlier = [name for name in order[: order.index(grade_cell.name)] if name in present]
            at = 0
            if earlier:
                at = 1 + next(i for i, c in enumerate(nb.cells) if _grade_id(c) == earlier[-1])
            nb.cells.insert(at, restored)
        return nb, resources


def _released(source: str) -> str:
    """A cell's source as students get it: hidden tests removed (as nbgrader's ClearHiddenTests)."""
    kept, hidden = [], False
    for line in source.splitlines():
        if "BEGIN HIDDEN TESTS" in line:
            hidden = True
        elif "END HIDDEN TESTS" in line:
            hidden = False
        elif not hidden:
            kept.append(line)
    return "\n".join(kept).strip()


def _grade_id(cell: NotebookNode) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


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

    def preprocess(
        self, nb: NotebookNode, resources: dict[str, Any]
    ) -> tuple[NotebookNode, dict[str, Any]]:
        self._deadline = time.monotonic() + self.notebook_timeout
        self._stopped = ""
        self._sizes: dict[int, int] = {}
        self.timeout_func = self._cell_timeout
        if self.sandbox_image:
            return self._in_container(nb, resources), resources
        handle, name = tempfile.mkstemp(prefix="scalelab-guard-", suffix=".log")
        os.close(handle)
        self._guard_report = Path(name)  # the kernel's audit hook appends to it
        try:
            return super().preprocess(nb, resources)
        finally:
            self._report_kernel_findings(resources)

    def _in_container(self, nb: NotebookNode, resources: dict[str, Any]) -> NotebookNode:
        """Execute `nb` with `python -m scalelab.guards` in a container of `sandbox_image`."""
        with tempfile.TemporaryDirectory() as tmp:
            notebook = Path(tmp) / "submission.ipynb"
            nbformat.write(nb, notebook)
            notebook.chmod(0o644)
            Path(tmp).chmod(0o755)
            name = f"scalelab-grade-{uuid.uuid4().hex[:12]}"
            command = [
                "docker", "run", "--rm", "--name", name, "--network", "none",
                f"--cpus={self.sandbox_cpus}", f"--memory={self.sandbox_memory}",
                "--pids-limit=512", "--read-only",
                "--tmpfs", "/tmp:exec", "--tmpfs", "/grading:exec",
                "--user", "65534:65534", "-e", "HOME=/tmp", "-e", "TF_CPP_MIN_LOG_LEVEL=3",
                "-w", "/grading", "-v", f"{notebook}:/submission/notebook.ipynb:ro",
                "--entrypoint", "python", self.sandbox_image, "-m", "scalelab.guards",
                "/submission/notebook.ipynb", f"--timeout={self.timeout}",
                f"--notebook-timeout={self.notebook_timeout}",
                f"--max-output-bytes={self.max_output_bytes}",
            ]  # fmt: skip
            try:
                done = subprocess.run(
                    command, capture_output=True, text=True, timeout=self.notebook_timeout + 120
                )
            except subprocess.TimeoutExpired:
                subprocess.run(["docker", "kill", name], capture_output=True)
                done = subprocess.CompletedProcess(command, -9, "", "the container was killed")
        for line in done.stderr.splitlines():
            if line.startswith(PROBLEM):
                self.report(resources, line.removeprefix(PROBLEM))
        try:
            return nbformat.reads(done.stdout, as_version=4)
        except Exception:  # no notebook came back: nothing of the student's ran to the end
            self.report(resources, f"the sandbox failed (exit {done.returncode}): "
                        f"{children.tail(done.stderr, 5)}")  # fmt: skip
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


PROBLEM = "scalelab-problem: "


def main(argv: list[str] | None = None) -> int:
    """Inside the sandbox: execute one notebook under GuardedExecute's limits, print it (JSON) on
    stdout and each problem found on stderr."""
    parser = argparse.ArgumentParser(prog="python -m scalelab.guards", description=main.__doc__)
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--timeout", type=int, default=300, help="seconds per cell")
    parser.add_argument("--notebook-timeout", type=int, default=900)
    parser.add_argument("--max-output-bytes", type=int, default=2_000_000)
    args = parser.parse_args(argv)
    nb = nbformat.read(args.notebook, as_version=4)
    executor = GuardedExecute(
        timeout=args.timeout,
        notebook_timeout=args.notebook_timeout,
        max_output_bytes=args.max_output_bytes,
        forbidden_paths=[],
    )
    with contextlib.redirect_stdout(sys.stderr):  # the kernel's noise must not mix with the JSON
        nb, _ = executor.preprocess(nb, {"metadata": {"path": os.getcwd()}})
    for problem in executor.found:
        print(PROBLEM + problem, file=sys.stderr)
    sys.stdout.write(nbformat.writes(nb))
    return 0


if __name__ == "__main__":
    sys.exit(main())
