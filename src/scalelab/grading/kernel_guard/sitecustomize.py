"""Imported at start-up by autograding kernels and their subprocesses (GuardedExecute puts this
folder on PYTHONPATH): refuse the course's answers and grades to the student's code, and note each
attempt and each network connection beyond this machine in the grader's report.

An audit hook sees what Python does, not what a program it starts does: the sandbox
(`scalelab grading autograde --sandbox docker`) is what holds against both.
"""

import ipaddress
import os
import sys

# Events whose first argument is a path (the first two for TWO_PATHS).
PATH_EVENTS = {
    "open", "os.listdir", "os.scandir", "os.remove", "os.rename", "os.rmdir", "os.mkdir",
    "os.chmod", "os.truncate", "os.link", "os.symlink", "os.utime", "shutil.rmtree",
    "shutil.copyfile", "shutil.move", "glob.glob", "sqlite3.connect",
}  # fmt: skip
TWO_PATHS = {"os.rename", "os.link", "os.symlink", "shutil.copyfile", "shutil.move"}


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder + os.sep)


def _beyond_this_machine(host: object) -> bool:
    try:
        return not ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return str(host) != "localhost"


def _install() -> None:
    forbidden = [
        os.path.realpath(p) for p in os.environ["SCALELAB_GUARD_FORBID"].split(os.pathsep) if p
    ]
    allowed = os.path.realpath(os.environ.get("SCALELAB_GUARD_ALLOW") or os.getcwd())
    report = os.open(
        os.environ["SCALELAB_GUARD_REPORT"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600
    )
    noted = set()

    def note(kind: str, what: str) -> None:
        if (kind, what) not in noted:
            noted.add((kind, what))
            os.write(report, f"{kind}\t{what}\n".encode())

    def hook(event: str, args: tuple[object, ...]) -> None:
        if event in PATH_EVENTS:
            for arg in args[: 2 if event in TWO_PATHS else 1]:
                if isinstance(arg, (str, bytes, os.PathLike)):
                    path = os.path.realpath(os.fsdecode(arg))
                    if not _inside(path, allowed) and any(_inside(path, f) for f in forbidden):
                        note("file", path)
                        raise PermissionError(f"{path} is off limits while this notebook is graded")
        elif event == "socket.connect" and isinstance(args[1], tuple):
            host, port = args[1][:2]
            if _beyond_this_machine(host):
                note("network", f"{host}:{port}")

    sys.addaudithook(hook)


if os.environ.get("SCALELAB_GUARD_REPORT"):
    _install()
