"""Peak memory of a chapter: its solution executed in a fresh kernel while the proportional set
size (PSS) of the kernel and every process it starts is summed twice a second; Linux only
(`scalelab bench memory --chapters 05_distribution`). PSS shares each library's pages
among the processes that map it, so the sum is what the processes cost together."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from papermill.parameterize import parameterize_notebook

from scalelab.tables import Table


def descendants(pid: int) -> list[int]:
    """`pid` and every process under it, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def pss_mb(pids: list[int]) -> float:
    """Summed proportional set size of `pids`, in MB (processes that ended count 0)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def peak_memory(repo: Path, chapter: str, fast: bool = True) -> list[str]:
    """Execute `chapter`'s solution and report its peak memory, overall and per cell; a table."""
    solution = repo / "solutions" / chapter / f"{chapter}.ipynb"
    notebook = nbformat.read(solution, as_version=4)  # type: ignore[no-untyped-call]
    notebook = parameterize_notebook(notebook, {"FAST": fast})  # as CI's papermill runs do
    peaks: dict[int, float] = {}
    current = {"cell": -1}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            cell = current["cell"]
            peaks[cell] = max(peaks.get(cell, 0.0), pss_mb(descendants(os.getpid())[1:]))

    def on_cell_execute(cell: Any, cell_index: int) -> None:
        current["cell"] = cell_index

    with tempfile.TemporaryDirectory() as scratch:
        client = NotebookClient(
            notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": scratch}}
        )
        client.on_cell_execute = on_cell_execute
        sampler = threading.Thread(target=sample, daemon=True)
        started = time.monotonic()
        sampler.start()
        try:
            client.execute()
        finally:
            done.set()
            sampler.join()
            shutil.rmtree(scratch, ignore_errors=True)
    seconds = time.monotonic() - started
    top = sorted(peaks.items(), key=lambda item: -item[1])[:5]
    first_words = [" ".join(cell.source.split())[:50] for cell in notebook.cells]
    rows = [
        {"cell": index, "peak MB": round(mb), "starts with": first_words[index]}
        for index, mb in top
        if index >= 0
    ]
    mode = "fast" if fast else "full"
    return [
        f"{chapter} ({mode} mode, {seconds:.0f} s): peak {max(peaks.values()):.0f} MB "
        "(the kernel and every process it started)",
        repr(Table(rows)),
    ]
