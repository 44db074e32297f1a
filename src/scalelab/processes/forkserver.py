"""Warm starts: a process that has imported TensorFlow once and forks each Python child that asks.

A stand-in server or a cluster task spends four CPU-seconds importing TensorFlow before it does
anything; a cluster of three pays it three times. A fork server pays it once: it imports
TensorFlow (and nothing of ours), listens on a Unix socket, and for each request forks a child
that becomes the requested program (`python -m module`, `python script.py` or `python -c code`,
with the caller's arguments, environment, folder and log file). The child leads a session of
its own; its exit code comes back over the request's connection, and when that connection
closes (the caller ended) the fork server kills the child's group.

One fork server runs per interpreter and per value of the variables TensorFlow reads when it
is imported (WARM_KEYS); it exits after IDLE_SECONDS without children. `SCALELAB_FORKSERVER=0`
turns warm starts off (children then start cold, as any `subprocess` does). A child runs
`sitecustomize` again with its own environment, as Python does at start: a graded kernel's
children get the audit hook of their own grading run (grading/kernel_guard).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import pids

# Environment variables read while TensorFlow and Keras are imported (or by Python at start):
# children whose values differ get a different fork server.
WARM_KEYS = (
    "PYTHONPATH",
    "PYTHONHASHSEED",
    "TF_USE_LEGACY_KERAS",
    "KERAS_BACKEND",
    "TF_CPP_MIN_LOG_LEVEL",
    "TF_ENABLE_ONEDNN_OPTS",
    "CUDA_VISIBLE_DEVICES",
)
LEGACY_KERAS_MODULES = ("tf_keras", "tensorflow_model_optimization")
IDLE_SECONDS = 300
STOP = -1  # what _fork returns for a stop request
START_SECONDS = 120
SWITCH = "SCALELAB_FORKSERVER"
# Our variables are a caller's settings (a grading run's guard, a server's parent): the fork
# server starts without them, and each child gets its caller's.
OURS = "SCALELAB_"
_FOLDER = Path(tempfile.gettempdir()) / f"scalelab-forkserver-{os.getuid()}"


class ForkedProcess:
    """A child of the fork server, driven like a subprocess.Popen: pid, poll, wait, signals."""

    stdin = stdout = stderr = None  # as a Popen without pipes: the child has its log

    def __init__(self, connection: socket.socket, pid: int, unread: bytes = b"") -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._connection = connection
        self._unread = unread  # what the server sent after the pid (its exit, if it has ended)

    def poll(self) -> int | None:
        """The exit code (negative: the signal that ended it), or None while it runs."""
        return self._read_exit(0.0)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the exit code; raise subprocess.TimeoutExpired after `timeout` seconds."""
        code = self._read_exit(timeout)
        if code is None:
            raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0.0)
        return code

    def send_signal(self, signum: int) -> None:
        """Send `signum` to the child (nothing once it has ended)."""
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def terminate(self) -> None:
        """SIGTERM the child."""
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL the child."""
        self.send_signal(signal.SIGKILL)

    def _read_exit(self, timeout: float | None) -> int | None:
        if self.returncode is not None:
            return self.returncode
        self._connection.settimeout(timeout)
        try:
            while b"\n" not in self._unread:
                data = self._connection.recv(4096)
                if not data:  # the fork server is gone; so is its child's group (it kills it)
                    self._unread += b'{"exit": -9}\n'
                self._unread += data
        except (TimeoutError, BlockingIOError):
            return None
        self.returncode = int(json.loads(self._unread.split(b"\n")[0])["exit"])
        self._connection.close()
        return self.returncode

    def __del__(self) -> None:
        self._connection.close()


def start(
    command: Sequence[str],
    log_path: Path,
    env: Mapping[str, str],
    cwd: str | None = None,
    error_path: Path | None = None,
) -> ForkedProcess | None:
    """Start `command` (this interpreter's argv) from a fork server, logging to `log_path` (its
    stderr to `error_path` if given); None when it cannot start warm here (turned off, not Linux,
    another interpreter, other flags)."""
    argv = list(command)
    if (
        env.get(SWITCH, os.environ.get(SWITCH)) == "0"
        or not _pidfds_work()
        or len(argv) < 2
        or argv[0] != sys.executable
        or (argv[1].startswith("-") and argv[1] not in ("-m", "-c"))
        or (argv[1] in ("-m", "-c") and len(argv) < 3)
    ):
        return None
    request = {"argv": argv[1:], "env": dict(env), "cwd": cwd or os.getcwd(), "log": str(log_path)}
    if error_path is not None:
        request["errors"] = str(error_path)
    connection = _connect(env)
    if connection is None:
        return None
    connection.sendall(json.dumps(request).encode() + b"\n")
    reply = b""
    while b"\n" not in reply:
        data = connection.recv(4096)
        if not data:
            connection.close()
            return None
        reply += data
    line, rest = reply.split(b"\n", 1)  # a child that ended at once: its exit came with its pid
    answer = json.loads(line)
    if "pid" not in answer:
        connection.close()
        raise OSError(f"The fork server could not start {argv[1:3]}: {answer.get('error')}")
    return ForkedProcess(connection, int(answer["pid"]), rest)


def _pidfds_work() -> bool:
    """Whether this system lets us watch a process through a pidfd (Linux 5.3 or later, and
    allowed by the container's seccomp profile), which the fork server needs."""
    try:
        os.close(os.pidfd_open(os.getpid()))
        return True
    except (AttributeError, OSError):
        return False


def _connect(env: Mapping[str, str]) -> socket.socket | None:
    """A connection to the fork server for `env`, started first if none runs; None if it fails."""
    warm = {key: env[key] for key in WARM_KEYS if key in env}
    key = f"{_digest(sys.executable)}-{_digest(json.dumps(warm, sort_keys=True))}"
    try:
        _FOLDER.mkdir(mode=0o700, exist_ok=True)
    except OSError:
        return None
    path = _FOLDER / f"{key}.sock"
    connection = _try_connect(path)
    if connection:
        return connection
    with open(_FOLDER / f"{key}.lock", "a") as lock:  # one caller starts it, the others wait
        fcntl.flock(lock, fcntl.LOCK_EX)
        connection = _try_connect(path)
        if connection:
            return connection
        with open(_FOLDER / f"{key}.log", "ab") as log:
            launched = subprocess.run(
                [sys.executable, "-m", "scalelab.processes.forkserver", str(path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                env={
                    **{
                        k: v
                        for k, v in os.environ.items()
                        if k not in WARM_KEYS and not k.startswith(OURS)
                    },
                    **warm,
                },
                cwd="/",
                start_new_session=True,
                check=False,
            )
        if launched.returncode != 0 or not launched.stdout.strip().isdigit():
            return None
        pid = int(launched.stdout)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline and pids.alive(pid):
            connection = _try_connect(path)
            if connection:
                return connection
            time.sleep(0.05)
    return None


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _try_connect(path: Path) -> socket.socket | None:
    connection = socket.socket(socket.AF_UNIX)
    try:
        connection.connect(str(path))
        return connection
    except OSError:
        connection.close()
        return None


# --- the fork server ------------------------------------------------------------------------


def serve(path: Path) -> None:
    """Import TensorFlow, then fork a child per request until IDLE_SECONDS pass without one."""
    import tensorflow  # noqa: F401  (the point: children start with it imported)

    if os.environ.get("TF_USE_LEGACY_KERAS") == "1":  # Keras 2 and what only it can run (QAT)
        for name in LEGACY_KERAS_MODULES:
            with contextlib.suppress(ImportError):
                importlib.import_module(name)

    listener = socket.socket(socket.AF_UNIX)
    path.unlink(missing_ok=True)
    listener.bind(str(path))
    listener.listen(64)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    children: dict[int, tuple[socket.socket, int]] = {}  # pidfd -> (connection, pid)
    idle_since, stopping = time.monotonic(), False
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # and take the children along
    try:
        while children or (not stopping and time.monotonic() - idle_since < IDLE_SECONDS):
            for key, _ in selector.select(timeout=10):
                if key.data == "accept":
                    connection, _ = listener.accept()
                    pid = _fork(connection, listener, selector)
                    if pid == STOP:
                        stopping = True
                    elif pid:
                        pidfd = os.pidfd_open(pid)
                        children[pidfd] = (connection, pid)
                        selector.register(pidfd, selectors.EVENT_READ, "exit")
                        selector.register(connection, selectors.EVENT_READ, pid)
                elif key.data == "exit":
                    connection, pid = children.pop(int(key.fd))
                    _, status = os.waitpid(pid, 0)
                    selector.unregister(key.fd)
                    os.close(int(key.fd))
                    with contextlib.suppress(KeyError):  # gone already if its caller ended
                        selector.unregister(connection)
                    code = os.waitstatus_to_exitcode(status)
                    with contextlib.suppress(OSError):
                        connection.sendall(json.dumps({"exit": code}).encode() + b"\n")
                    connection.close()
                elif not _peek(key.fileobj):  # type: ignore[arg-type]
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(key.data, signal.SIGKILL)  # its caller ended
                    selector.unregister(key.fileobj)
            if children:
                idle_since = time.monotonic()
    finally:
        path.unlink(missing_ok=True)
        for _, pid in children.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def _peek(connection: socket.socket) -> bool:
    """False once the caller's end of `connection` has closed."""
    try:
        return bool(connection.recv(1, socket.MSG_PEEK))
    except OSError:
        return False


def stop_idle() -> None:
    """Ask this interpreter's fork servers to end once they have no children (a test run's end)."""
    for path in _FOLDER.glob(f"{_digest(sys.executable)}-*.sock"):
        connection = _try_connect(path)
        if connection:
            with connection:
                connection.sendall(b'{"stop": true}\n')
                with contextlib.suppress(OSError):
                    connection.recv(64)


def _fork(connection: socket.socket, listener: socket.socket, selector: Any) -> int:
    """Read one request and fork its child; the parent gets the pid (0 when the request failed),
    the child never returns."""
    connection.settimeout(10)
    try:
        data = b""
        while not data.endswith(b"\n"):
            chunk = connection.recv(65536)
            if not chunk:
                raise ValueError("the caller left before its request ended")
            data += chunk
        request = json.loads(data)
    except (OSError, ValueError) as error:
        with contextlib.suppress(OSError):
            connection.sendall(json.dumps({"error": str(error)}).encode() + b"\n")
        connection.close()
        return 0
    if request.get("stop"):
        with contextlib.suppress(OSError):
            connection.sendall(b'{"stopping": true}\n')
        connection.close()
        return STOP
    sys.stdout.flush()
    sys.stderr.flush()
    led, leads = os.pipe()
    pid = os.fork()
    if pid:
        os.close(leads)
        os.read(led, 1)  # the child leads its own session before anyone may signal its group
        os.close(led)
        connection.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        connection.settimeout(None)
        return pid
    for signum in (signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP):  # the fork server's are not
        signal.signal(signum, signal.SIG_DFL)  # the child's, and a caller may signal it once
    signal.signal(signal.SIGINT, signal.default_int_handler)  # it has its pid, just below
    os.setsid()
    os.close(led)
    os.write(leads, b"x")
    os.close(leads)
    selector.close()
    listener.close()
    connection.close()
    os._exit(_become(request))


def _become(request: dict[str, Any]) -> int:
    """In the forked child: turn into the requested program, run it, and return its exit code."""
    code = 1
    try:
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        errors = request.get("errors")
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        errors_log = os.open(errors, flags, 0o644) if errors else log
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(errors_log, 2)
        os.closerange(3, 65536)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        if os.environ.get("PYTHONUNBUFFERED"):
            for stream in (sys.stdout, sys.stderr):
                stream.reconfigure(line_buffering=True, write_through=True)  # type: ignore[union-attr]
        if "numpy" in sys.modules:  # seeded afresh, as at a cold start (Python's random reseeds
            sys.modules["numpy"].random.seed()  # itself after a fork; NumPy's global one does not)
        for name in [name for name in sys.modules if name.split(".")[0] == "scalelab"]:
            del sys.modules[name]  # ours is read afresh: the fork server may be older than an edit
        if "sitecustomize" in sys.modules:  # what Python runs at start, now with this environment
            importlib.reload(sys.modules["sitecustomize"])
        code = _run(request["argv"])
    except SystemExit as done:
        code = _exit_code(done)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        code = _finish(code)
    return code


def _run(argv: list[str]) -> int:
    import runpy

    first, rest = argv[0], argv[1:]
    names = {"-m": rest[0].rsplit(".", 1)[-1] if rest else "", "-c": "python -c"}
    _name_process(names.get(first, Path(first).name))
    if first == "-m":
        sys.argv, sys.path[0] = ["-m", *rest[1:]], os.getcwd()
        runpy.run_module(rest[0], run_name="__main__", alter_sys=True)
    elif first == "-c":
        sys.argv, sys.path[0] = ["-c", *rest[1:]], ""
        exec(compile(rest[0], "<string>", "exec"), {"__name__": "__main__"})
    else:
        sys.argv, sys.path[0] = [first, *rest], str(Path(first).resolve().parent)
        runpy.run_path(first, run_name="__main__")
    return 0


def _name_process(name: str) -> None:
    """Show the program's name (not the fork server's) in top and ps -o comm."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # 15: PR_SET_NAME


def _finish(code: int) -> int:
    """What Python does when a program ends: wait for its threads, run atexit, flush."""
    import atexit
    import threading

    try:
        threading._shutdown()  # type: ignore[attr-defined]
        atexit._run_exitfuncs()
    except SystemExit as done:
        code = _exit_code(done)
    except BaseException:
        import traceback

        traceback.print_exc()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    return code


def _exit_code(done: SystemExit) -> int:
    if done.code is None:
        return 0
    if isinstance(done.code, int):
        return done.code & 0xFF
    print(done.code, file=sys.stderr)
    return 1


def launch(path: Path) -> None:
    """Print the fork server's pid and leave it running: nobody's child, nobody's zombie."""
    pid = os.fork()  # before TensorFlow's import: the fork server starts with one thread
    if pid:
        print(pid, flush=True)
        os._exit(0)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    serve(path)


if __name__ == "__main__":
    launch(Path(sys.argv[1]))
