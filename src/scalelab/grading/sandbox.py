"""The grading sandbox: one notebook executed in a throwaway Docker container of the course image
(no network, limited CPU, memory and processes, a read-only root, `nobody` as user), by
`scalelab grading sandbox-run` inside it; the executed notebook comes back on stdout and each
problem found on stderr, as a line that starts with PROBLEM."""

from __future__ import annotations

import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat.notebooknode import NotebookNode

from scalelab.processes import children

PROBLEM = "scalelab-problem: "


@dataclass
class Run:
    """What came back from a container: the executed notebook (None when none did, `failure`
    says why) and the problems found while it ran."""

    notebook: NotebookNode | None
    problems: list[str] = field(default_factory=list)
    failure: str = ""


def unavailable(image: str) -> str:
    """Why a Docker sandbox of `image` cannot be used here ("" if it can)."""
    try:
        found = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Id}}", image],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"no Docker client or engine answers ({error})"
    if found.returncode != 0:
        return children.tail(found.stderr, 2) or f"no image {image}"
    return ""


def run_in_container(
    nb: NotebookNode,
    image: str,
    *,
    cpus: str,
    memory: str,
    timeout: int,
    notebook_timeout: int,
    max_output_bytes: int,
) -> Run:
    """Execute `nb` with `scalelab grading sandbox-run` in a container of `image`."""
    with tempfile.TemporaryDirectory() as tmp:
        notebook = Path(tmp) / "submission.ipynb"
        nbformat.write(nb, notebook)  # type: ignore[no-untyped-call]
        notebook.chmod(0o644)
        Path(tmp).chmod(0o755)
        name = f"scalelab-grade-{uuid.uuid4().hex[:12]}"
        command = [
            "docker", "run", "--rm", "--name", name, "--network", "none",
            f"--cpus={cpus}", f"--memory={memory}", "--pids-limit=512", "--read-only",
            "--tmpfs", "/tmp:exec", "--tmpfs", "/grading:exec",
            "--user", "65534:65534", "-e", "HOME=/tmp", "-e", "TF_CPP_MIN_LOG_LEVEL=3",
            "-w", "/grading", "-v", f"{notebook}:/submission/notebook.ipynb:ro",
            "--entrypoint", "python", image, "-m", "scalelab", "grading", "sandbox-run",
            "/submission/notebook.ipynb", f"--timeout={timeout}",
            f"--notebook-timeout={notebook_timeout}", f"--max-output-bytes={max_output_bytes}",
        ]  # fmt: skip
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=notebook_timeout + 120
            )
        except subprocess.TimeoutExpired:
            subprocess.run(["docker", "kill", name], capture_output=True)
            done = subprocess.CompletedProcess(command, -9, "", "the container was killed")
    problems = [
        line.removeprefix(PROBLEM) for line in done.stderr.splitlines() if line.startswith(PROBLEM)
    ]
    try:
        return Run(nbformat.reads(done.stdout, as_version=4), problems)  # type: ignore[no-untyped-call]
    except Exception:  # no notebook came back: nothing of the student's ran to the end
        failure = f"exit {done.returncode}: {children.tail(done.stderr, 5)}"
        return Run(None, problems, failure)
