"""Fixtures for the cluster tests: small task programs, and checks that no task outlived them."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import psutil
import pytest

from scalelab.processes.cluster import Cluster

# Task programs without TensorFlow, so supervision tests take seconds.
SCRIPTS = {
    "hang.py": """
import json, os, time
task = json.loads(os.environ["TF_CONFIG"])["task"]
print(f"{task['type']}:{task['index']} started", flush=True)
time.sleep(600)
""",
    "crash.py": """
import json, os, time
task = json.loads(os.environ["TF_CONFIG"])["task"]
print(f"{task['type']}:{task['index']} started", flush=True)
if task["index"] == 1:
    time.sleep(0.5)
    raise RuntimeError("worker 1 ran out of memory (simulated)")
time.sleep(600)
""",
    "result.py": """
import json, os
from scalelab.processes.programs import write_result
task = json.loads(os.environ["TF_CONFIG"])["task"]
write_result({"task": task, "answer": 42})
""",
    "serve_or_result.py": """
import json, os, time
from scalelab.processes.programs import write_result
task = json.loads(os.environ["TF_CONFIG"])["task"]
if task["type"] == "chief":  # serves until stopped, like Keras Tuner's oracle
    print("chief serving", flush=True)
    time.sleep(600)
write_result({"task": task})
""",
    "early_chief.py": """
import json, os, time
from scalelab.processes.programs import write_result
task = json.loads(os.environ["TF_CONFIG"])["task"]
if task["type"] == "worker":  # workers outlive the chief, as a loaded machine can make them
    time.sleep(1.5)
write_result({"task": task})
""",
    "port_taken_once.py": """
import json, os, pathlib
from scalelab.processes.programs import write_result
config = json.loads(os.environ["TF_CONFIG"])
marker = pathlib.Path(os.environ["MARKER"])
if config["task"]["index"] == 1 and not marker.exists():  # as TensorFlow says it, once
    marker.touch()
    raise SystemExit("UnknownError: Could not start gRPC server")
write_result({"cluster": config["cluster"]})
""",
    "spawn.py": """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(f"child {child.pid}", flush=True)
time.sleep(600)
""",
}


@pytest.fixture
def script(tmp_path: Path) -> Callable[[str], Path]:
    """Write one of SCRIPTS to a temporary folder and return its path."""

    def write(name: str) -> Path:
        path = tmp_path / name
        path.write_text(SCRIPTS[name])
        return path

    return write


def alive(pids: Iterable[int | None]) -> list[int]:
    """Processes that still run among `pids` or in their process groups (zombies are dead)."""
    groups = {pid for pid in pids if pid}
    found = []
    for process in psutil.process_iter(["status"]):
        try:
            member = process.pid in groups or os.getpgid(process.pid) in groups
        except ProcessLookupError:
            continue
        if member and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process.pid)
    return found


def wait_until_dead(pids: Iterable[int | None], seconds: float = 10.0) -> list[int]:
    """Poll until no process in `pids` (or their groups) runs; return the survivors."""
    pids = list(pids)
    deadline = time.monotonic() + seconds
    while (survivors := alive(pids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return survivors


def pids(cluster: Cluster) -> list[int | None]:
    """The current process id of every task."""
    return [cluster.pid(task) for task in cluster.tasks]
