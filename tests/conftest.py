"""Shared fixtures, and a summary of what the slow tests executed and scored."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHAPTERS = sorted(p.name for p in (REPO / "solutions").glob("[0-9][0-9]_*") if p.is_dir())

# The kernels the tests start (papermill, nbgrader, the grading command) are forked from a process
# that has imported TensorFlow (tests/jupyter's python3 kernelspec names scalelab's warm
# provisioner): the same kernel, seconds sooner each. JupyterLab started as `make lab` starts it
# (tests/test_lab.py, the browser tests) gets LEARNER_JUPYTER_PATH: the kernels a learner gets.
WARM_KERNELS = str(REPO / "tests" / "jupyter")
LEARNER_JUPYTER_PATH = os.pathsep.join(
    p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p and p != WARM_KERNELS
)
os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [WARM_KERNELS, LEARNER_JUPYTER_PATH]))


# Claims that compare latencies (Chapter 3's REST and gRPC middle halves) need a machine no busier
# than a test worker's share: tests that start several processes at once (grading pools, Dask
# clusters, a Job's pods) hold this lock shared, such a chapter holds it alone while it executes.
# ci60 failed Chapter 3's claim (0.855 where "apart" is > 1) beside two Dask grading tests.
TIMING_LOCK = Path(tempfile.gettempdir()) / "scalelab-timing.lock"


@contextlib.contextmanager
def crowding() -> Iterator[None]:
    """Hold while a test starts several worker processes: no latency claim is measured meanwhile."""
    with TIMING_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        yield


@contextlib.contextmanager
def measuring() -> Iterator[None]:
    """Hold while a chapter measures latencies: no test that crowds the machine runs meanwhile."""
    with TIMING_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def apt_install(package: str) -> bool:
    """Install a Debian package with apt-get, one apt at a time across test workers (a lock
    file); False where this user cannot (not root, or no apt-get)."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return False
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", package]
    with open("/tmp/scalelab-apt.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if subprocess.run(install, env=env, capture_output=True, timeout=900).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, timeout=900)
            subprocess.run(install, env=env, check=True, timeout=900)
    return True


def ensure_nginx() -> None:
    """Install Debian's nginx if it is missing (root only), or skip saying how to get it."""
    from scalelab.processes import nginx

    try:
        nginx.binary()
    except nginx.NginxError as missing:
        if not apt_install("nginx"):
            pytest.skip(str(missing))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--no-variants",
        action="store_true",
        help="execute the chapters without grading their answer variants (make test-python: "
        "the variants are graded once, by make test's main Python)",
    )


def pytest_sessionfinish(session: pytest.Session) -> None:
    """At the end of the run (not of each xdist worker), end the idle fork servers it started."""
    if not hasattr(session.config, "workerinput"):
        from scalelab.processes import forkserver

        forkserver.stop_idle()


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    """Print what each slow test reported (notebooks run, round-trip scores), also under xdist."""
    # A test with subtests reports once per subtest, each carrying the test's properties.
    calls = [
        report
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "call"
    ]
    lines = sorted(
        {str(value) for r in calls for name, value in r.user_properties if name == "summary"}
    )
    executed = len(
        {r.nodeid for r in calls for name, _ in r.user_properties if name == "executed_notebook"}
    )
    if lines:
        terminalreporter.section("scalelab: notebooks executed and grading round trips")
        for line in lines:
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"{executed} solution notebook(s) executed with papermill")
