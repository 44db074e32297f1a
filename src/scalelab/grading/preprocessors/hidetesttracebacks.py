"""HideTestTracebacks: feedback shows a failed test's error, not a traceback that quotes hidden
tests."""

from __future__ import annotations

from nbconvert.preprocessors import Preprocessor


class HideTestTracebacks(Preprocessor):
    """Feedback: a failed test shows its error, not a traceback that quotes hidden tests."""

    enabled = True  # nbconvert preprocessors are off unless enabled

    def preprocess_cell(self, cell, resources, index):  # type: ignore[no-untyped-def]
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("grade"):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = [f"{output['ename']}: {output['evalue']}"]
        return cell, resources
