"""nbgrader's commands on a course: the one way this package starts nbgrader, and a new gradebook
made without starting a process."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from scalelab.processes import children

CONFIG = Path("grader") / "nbgrader_config.py"


class GradingError(RuntimeError):
    """nbgrader failed; the message carries the end of its log."""


def nbgrader(
    root: Path,
    *args: str,
    timeout: float = 1800,
    strict: bool = True,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run one nbgrader command on the course at `root` (with `env` added to the environment);
    return its log. Raise if it failed, and (if `strict`) if it logged an error."""
    environment = {
        **os.environ,
        **(env or {}),
        "SCALELAB_COURSE_ROOT": str(root),
        # nbgrader starts `alembic` by name: make this environment's scripts findable.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    create_gradebook(root)
    # jsonschema's IRI check compiles a grammar on import (~2 s a process); nbgrader never needs it.
    command = children.python("nbgrader", args, skip=["rfc3987_syntax"])
    what = f"`nbgrader {' '.join(args)}`"
    try:
        done = children.run(
            command,
            what,
            env=environment,
            cwd=root / "grader",
            timeout=timeout,
            lines=25,
            error=GradingError,
        )
    except GradingError as failure:
        if strict:
            raise
        return str(failure)
    log = done.stdout + done.stderr
    if strict and (
        "[ERROR]" in log or "| ERROR]" in log
    ):  # nbgrader logs some failures and still exits 0
        raise GradingError(f"{what} logged an error:\n{children.tail(log, 25)}")
    return log


def create_gradebook(root: Path) -> None:
    """Create the course's empty gradebook if it has none, as nbgrader would, in this process.

    nbgrader stamps a new gradebook with its schema's version, which it learns by starting an
    `alembic heads` process (3 CPU-s); alembic's own API reads the same version here at once.
    """
    path = root / "grader" / "gradebook.db"
    if path.exists():
        return
    from unittest import mock

    import nbgrader.api
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from nbgrader.dbutil import ALEMBIC_DIR

    config = Config()
    config.set_main_option("script_location", ALEMBIC_DIR)
    head = ScriptDirectory.from_config(config).get_current_head()
    with mock.patch.object(nbgrader.api, "get_alembic_version", lambda: head):
        nbgrader.api.Gradebook(f"sqlite:///{path}").close()
