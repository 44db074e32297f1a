"""`make lab`'s JupyterLab: nbgrader's extension is there and its Validate button works.

The Validate button runs `nbgrader validate` with the course's configuration, on the quickest
chapter: its solution must pass (here, through the button's HTTP endpoint) and its untouched
student notebook must fail (pressed in a real browser: tests/test_browser.py). Every chapter's
untouched notebook is also autograded for real in tests/test_grading_roundtrip.py.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from conftest import LEARNER_JUPYTER_PATH, REPO

TOKEN = "scalelab-test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


VALIDATED = "01_savedmodel"  # the quickest chapter to execute (about half of Chapter 4's time)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab started as `make lab` starts it, on a copy of notebooks/ (with the solution of
    the quickest chapter next to its student notebook)."""
    tmp_path = tmp_path_factory.mktemp("lab")
    shutil.copytree(REPO / "notebooks", tmp_path / "notebooks")
    solved = tmp_path / "notebooks" / VALIDATED / "solved.ipynb"
    shutil.copyfile(REPO / "solutions" / VALIDATED / f"{VALIDATED}.ipynb", solved)
    shutil.copytree(REPO / "solutions", tmp_path / "solutions")  # what the formgrader lists
    for config in ("nbgrader_config.py", "grader/nbgrader_config.py"):  # as at the repo root
        (tmp_path / config).parent.mkdir(exist_ok=True)
        shutil.copyfile(REPO / config, tmp_path / config)
    port = free_port()
    log = (tmp_path / "lab.log").open("w")
    command = [sys.executable, "-m", "jupyter", "lab", "--ServerApp.root_dir=notebooks"]
    command += ["--no-browser", f"--port={port}", f"--IdentityProvider.token={TOKEN}"]
    # A workspace of its own: the user's (~/.jupyter/lab/workspaces) would reopen other tabs.
    command.append(f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}")
    if os.geteuid() == 0:  # as `make lab` does when run as root (CI containers)
        command.append("--allow-root")
    # `make lab` puts the venv's scripts on PATH: the formgrader starts `alembic` by name.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=os.environ | {"PATH": path, "JUPYTER_PATH": LEARNER_JUPYTER_PATH},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            if process.poll() is not None:
                break
            try:
                if requests.get(f"{url}/api/status", params={"token": TOKEN}, timeout=2).ok:
                    break
            except (requests.ConnectionError, requests.Timeout):  # a first start answers slowly
                time.sleep(0.5)
        else:
            pytest.fail(f"JupyterLab did not start: {(tmp_path / 'lab.log').read_text()[-2000:]}")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_lab_loads_nbgrader_extension(lab):
    page = requests.get(f"{lab}/lab", params={"token": TOKEN}, timeout=30)
    assert page.ok
    extensions = json.dumps(page.text)
    assert "@jupyter/nbgrader" in extensions, "nbgrader's JupyterLab extension is not loaded"


def validate(lab: str, path: str) -> dict:
    """What the Validate button reports for the notebook at `path` (under notebooks/)."""
    answer = requests.post(
        f"{lab}/assignments/validate",
        data={"path": path},
        headers={"Authorization": f"token {TOKEN}"},
        timeout=900,
    )
    assert answer.ok, answer.text[:500]
    result = answer.json()
    assert result["success"] is True, result  # the validator ran
    return result["value"]


@pytest.mark.slow
def test_validate_button_says_a_correct_notebook_passes_with_the_course_config(lab):
    report = validate(lab, f"{VALIDATED}/solved.ipynb")
    problems = {key: report[key] for key in ("failed", "changed", "errors") if report.get(key)}
    assert not problems, f"the solution does not pass the Validate button: {problems}"
