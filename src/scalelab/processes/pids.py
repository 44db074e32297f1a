"""Whether a process (by pid, on this machine) still runs."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """True while `pid` runs (or is a zombie), including another user's process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
