"""A course's gradebook, created as nbgrader creates it, without nbgrader's `alembic` process."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from unittest import mock

from scalelab import grading


def test_a_new_gradebook_carries_the_schema_version_alembic_gives_and_starts_no_process(
    tmp_path: Path,
):
    from nbgrader.api import Gradebook, get_alembic_version

    (tmp_path / "grader").mkdir()
    with mock.patch.object(subprocess, "Popen", side_effect=AssertionError("a process started")):
        grading.create_gradebook(tmp_path)
    path = tmp_path / "grader" / "gradebook.db"
    with sqlite3.connect(path) as db:
        (stamped,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
    bin_folder = str(Path(sys.executable).parent)  # where nbgrader finds `alembic`
    with mock.patch.dict(os.environ, {"PATH": bin_folder + os.pathsep + os.environ["PATH"]}):
        assert stamped == get_alembic_version()  # what nbgrader itself would have written
    with Gradebook(f"sqlite:///{path}") as gradebook:
        gradebook.add_student("ada")
    grading.create_gradebook(tmp_path)  # an existing gradebook is left as it is
    with Gradebook(f"sqlite:///{path}") as gradebook:
        assert [student.id for student in gradebook.students] == ["ada"]
