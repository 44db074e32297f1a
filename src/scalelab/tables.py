"""Rows of results (dicts) as a table: HTML in a notebook, aligned text in a terminal."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class Table:
    """Rows under `columns` (default: every key, in first-seen order); missing cells are blank."""

    def __init__(
        self, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None
    ) -> None:
        self.rows = list(rows)
        self.columns = list(columns or dict.fromkeys(key for row in self.rows for key in row))

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{c}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{row.get(c, '')}</td>" for c in self.columns) + "</tr>"
            for row in self.rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def __repr__(self) -> str:
        cells = [[str(c) for c in self.columns]]
        cells += [[str(row.get(c, "")) for c in self.columns] for row in self.rows]
        widths = [max(len(line[i]) for line in cells) for i in range(len(self.columns))]
        return "\n".join(
            "  ".join(v.rjust(w) for v, w in zip(line, widths, strict=True)) for line in cells
        )
