"""The grading sandbox: one notebook executed in a throwaway Docker container of the course image
(no network, limited CPU, memory and processes, a read-only root, `nobody` as user), by
`scalelab grading sandbox-run` inside it; the executed notebook comes back on stdout and each
problem found on stderr, as a line that starts with PROBLEM.

A sandbox that does not start (no engine, no image, an interpreter its user cannot run) is the
grader's failure, not the student's: `cannot_start` checks an image before anyone is graded, and
`run_in_container` raises SandboxUnavailable when a container ran nothing of the student's."""

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
# What `sandbox-run` prints (stderr) before it runs anything of the student's.
STARTED = "scalelab-sandbox: started"
# How a sandbox that did not start is reported (SandboxUnavailable's message starts with it).
NOT_STARTED = "the sandbox did not start"


class SandboxUnavailable(RuntimeError):
    """The sandbox did not start: nothing of the student's ran, so nothing may be graded."""


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


def cannot_start(image: str) -> str:
    """Why a sandbox of `image` cannot start ("" if it can): its python, run as the sandbox's
    user with the sandbox's mounts, must import what `sandbox-run` runs."""
    name = f"scalelab-check-{uuid.uuid4().hex[:12]}"
    code = f"import scalelab.cli, scalelab.grading.preprocessors.guardedexecute; print({STARTED!r})"
    try:
        done = _run(_command(image, name, "-c", code), timeout=120)
    except OSError as error:
        return f"no Docker client ({error})"
    if done.returncode == 0 and STARTED in done.stdout:
        return ""
    return (
        f"{image} cannot run its python as user 65534 with a read-only root and a fresh /tmp "
        f"(exit {done.returncode}: {_one_line(done.stderr)})"
    )


def run_in_container(
    nb: NotebookNode,
    image: str,
    *,
    cpus: str,
    memory: str,
    timeout: int,
    notebook_timeout: int,
    max_output_bytes: int,
    iopub_timeout: int,
) -> Run:
    """Execute `nb` with `scalelab grading sandbox-run` in a container of `image`; raise
    SandboxUnavailable if the container did not start it."""
    with tempfile.TemporaryDirectory() as tmp:
        notebook = Path(tmp) / "submission.ipynb"
        nbformat.write(nb, notebook)  # type: ignore[no-untyped-call]
        notebook.chmod(0o644)
        Path(tmp).chmod(0o755)
        command = _command(
            image, f"scalelab-grade-{uuid.uuid4().hex[:12]}",
            "-m", "scalelab", "grading", "sandbox-run", "/submission/notebook.ipynb",
            f"--timeout={timeout}", f"--notebook-timeout={notebook_timeout}",
            f"--max-output-bytes={max_output_bytes}", f"--iopub-timeout={iopub_timeout}",
            options=(
                f"--cpus={cpus}", f"--memory={memory}", "--pids-limit=512",
                "-v", f"{notebook}:/submission/notebook.ipynb:ro",
            ),
        )  # fmt: skip
        try:
            done = _run(command, timeout=notebook_timeout + 120)
        except OSError as error:
            raise SandboxUnavailable(f"{NOT_STARTED}: no Docker client ({error})") from None
    # Docker's own failures exit 125; without STARTED nothing of the student's ran.
    if STARTED not in done.stderr or done.returncode == 125:
        raise SandboxUnavailable(
            f"{NOT_STARTED} (exit {done.returncode}): {_one_line(done.stderr)}"
        )
    problems = [
        line.removeprefix(PROBLEM) for line in done.stderr.splitlines() if line.startswith(PROBLEM)
    ]
    try:
        return Run(nbformat.reads(done.stdout, as_version=4), problems)  # type: ignore[no-untyped-call]
    except Exception:  # no notebook came back: nothing of the student's ran to the end
        failure = f"exit {done.returncode}: {children.tail(done.stderr, 5)}"
        return Run(None, problems, failure)


def _command(image: str, name: str, *args: str, options: tuple[str, ...] = ()) -> list[str]:
    """`docker run` of `python *args` in a sandbox of `image`: no network, a read-only root,
    fresh /tmp and /grading, user 65534 (nobody); `options` add limits and mounts."""
    return [
        "docker", "run", "--rm", "--name", name, "--network", "none", "--read-only",
        "--tmpfs", "/tmp:exec", "--tmpfs", "/grading:exec",
        "--user", "65534:65534", "-e", "HOME=/tmp", "-e", "TF_CPP_MIN_LOG_LEVEL=3",
        "-w", "/grading", *options, "--entrypoint", "python", image, *args,
    ]  # fmt: skip


def _run(command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a `_command`; past `timeout` seconds kill its container (exit -9)."""
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as late:
        subprocess.run(
            ["docker", "kill", command[command.index("--name") + 1]], capture_output=True
        )
        said = late.stderr.decode(errors="replace") if late.stderr else ""  # always bytes
        return subprocess.CompletedProcess(command, -9, "", f"{said}\nthe container was killed")


def _one_line(stderr: str) -> str:
    """The end of a container's stderr on one line."""
    return " / ".join(children.tail(stderr, 3).splitlines())
