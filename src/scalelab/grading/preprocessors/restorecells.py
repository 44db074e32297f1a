"""RestoreCells: test cells restored from the gradebook, even deleted or renamed ones."""

from __future__ import annotations

from typing import Any

from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import OverwriteCells

from scalelab.grading.preprocessors.reporting import Reporting


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
