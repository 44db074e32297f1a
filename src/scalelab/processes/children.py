"""Child processes, one way for the whole project: the argv of a Python child (`python`), run one
to its end or start one logging to a file, and quote its log's tail when it fails; free TCP ports;
native stderr kept quiet; the `with` block of whatever runs until stop() (servers, clusters, links).
Importing this never imports TensorFlow."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from . import forkserver

TAIL_LINES = 12
# A Python exception's line, or a command line's `ERROR: ...` (TF Serving's, the stand-in's)
_ERROR_LINE = re.compile(r"(?:\w+\.)*\w*(?:Error|Exception|Exit|Interrupt)\b|ERROR: ")


_DIE_WITH_PARENT = (
    f"import ctypes, os, sys; ctypes.CDLL(None).prctl(1, {int(signal.SIGKILL)}); "
    "os.getppid() == int(sys.argv[1]) or os._exit(1); os.execvp(sys.argv[2], sys.argv[2:])"
)


def tail(text: str, lines: int = TAIL_LINES) -> str:
    """The last lines of a log, led by the last error line if it is a little earlier."""
    kept = [line[:300] for line in text.splitlines() if line.strip()]
    last = kept[-lines:]
    error = next((line for line in reversed(kept[-5 * lines :]) if _ERROR_LINE.match(line)), None)
    if error and error not in last:
        last = [error, "...", *kept[-(lines - 2) :]]
    return "\n".join(last)


def run(
    command: Sequence[str],
    what: str,
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float,
    lines: int = TAIL_LINES,
    error: type[Exception] = RuntimeError,
    warm: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run `command` to its end with its output captured; if it fails or overruns `timeout`,
    raise `error` naming `what` failed, with the tail of its output (stdout, then stderr).
    With `warm`, a Python child starts from the fork server where it can (start)."""
    if warm:
        done = _run_warm(command, what, env, cwd, timeout, lines, error)
        if done:
            return done
    try:
        done = subprocess.run(
            list(command), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as expired:
        log = _text(expired.stdout) + _text(expired.stderr)
        raise error(
            f"{what} did not finish within {timeout:g} s (pass a larger timeout= on a slow "
            f"machine). Last lines of its output:\n{tail(log, lines) or '(nothing)'}"
        ) from None
    if done.returncode != 0:
        log = tail(done.stdout + done.stderr, lines) or "(no output)"
        raise error(f"{what} failed (exit {done.returncode}):\n{log}")
    return done


def _run_warm(
    command: Sequence[str],
    what: str,
    env: Mapping[str, str] | None,
    cwd: str | os.PathLike[str] | None,
    timeout: float,
    lines: int,
    error: type[Exception],
) -> subprocess.CompletedProcess[str] | None:
    """run() through the fork server; None when the child cannot start warm here."""
    with tempfile.TemporaryDirectory(prefix="scalelab-run-") as scratch:
        out, err = Path(scratch) / "stdout", Path(scratch) / "stderr"
        folder = os.fspath(cwd) if cwd is not None else None
        child = forkserver.start(command, out, dict(env or os.environ), folder, error_path=err)
        if child is None:
            return None
        try:
            code = child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            log = _read(out) + _read(err)
            raise error(
                f"{what} did not finish within {timeout:g} s (pass a larger timeout= on a slow "
                f"machine). Last lines of its output:\n{tail(log, lines) or '(nothing)'}"
            ) from None
        stdout, stderr = _read(out), _read(err)
    if code != 0:
        log = tail(stdout + stderr, lines) or "(no output)"
        raise error(f"{what} failed (exit {code}):\n{log}")
    return subprocess.CompletedProcess(list(command), code, stdout, stderr)


def _read(path: Path) -> str:
    return path.read_bytes().decode(errors="replace") if path.exists() else ""


def _text(output: str | bytes | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


class Stoppable:
    """Something that runs until stop(): in a `with` block, it stops when the block ends."""

    def stop(self) -> None:
        """Stop it (safe to call twice)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass
class LoggedProcess:
    """A child process whose stdout and stderr are appended to `log_path` from `offset` on."""

    process: subprocess.Popen[bytes] | forkserver.ForkedProcess
    log_path: Path
    offset: int

    def output(self) -> str:
        """What this process has logged so far (not what earlier runs left in the same file)."""
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as log:
            log.seek(self.offset)
            return log.read().decode(errors="replace")

    def tail(self, lines: int = TAIL_LINES) -> str:
        """The last lines this process logged, led by its last Python error line."""
        return tail(self.output(), lines)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the process, SIGKILL it if it still runs after `grace` seconds, and reap it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(
    command: Sequence[str],
    log_path: str | os.PathLike[str],
    env: Mapping[str, str],
    *,
    own_group: bool = False,
    warm: bool = False,
) -> LoggedProcess:
    """Start `command` with no stdin, appending its stdout and stderr to `log_path`.

    With `own_group` it leads a process group of its own (so a signal to the group reaches what
    it starts), and on Linux the kernel kills it when the thread that started it ends. With
    `warm`, a Python child that imports TensorFlow is forked from a process that has imported
    it already (forkserver: its own group, killed when this process ends), where this machine
    can; elsewhere it starts cold.
    """
    path = Path(log_path)
    with open(path, "ab") as log:  # append mode: reading never moves the writer
        offset = log.tell()
        forked = forkserver.start(command, path, env) if warm else None
        if forked:
            return LoggedProcess(forked, path, offset)
        if own_group and sys.platform.startswith("linux"):
            command = [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), *command]
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=own_group,
        )
    return LoggedProcess(process, path, offset)


def free_ports(n: int) -> list[int]:
    """`n` distinct TCP ports nobody listens on right now, and that no other free_ports call on
    this machine handed out in the last RESERVED_SECONDS: a server takes seconds to bind its port
    (TensorFlow's import alone takes four), and two servers must not be given the same one."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, not {n!r}.")
    chosen: list[int] = []
    for _ in range(100 * n):
        with socket.socket() as probe:
            probe.bind(("", 0))  # all interfaces, as TensorFlow's gRPC servers bind
            port = int(probe.getsockname()[1])
        if port not in chosen and _reserve(port):
            chosen.append(port)
            if len(chosen) == n:
                return chosen
    raise OSError(f"no {n} free TCP ports found that no other process was just given")


RESERVED_SECONDS = 120
_RESERVATIONS = Path(tempfile.gettempdir()) / f"scalelab-ports-{os.getuid()}"


def _reserve(port: int) -> bool:
    """Claim `port` for RESERVED_SECONDS among this machine's processes (a file per port, under
    a lock); True when claimed, or when no claim can be written here (the kernel's word stands)."""
    mark = _RESERVATIONS / str(port)
    try:
        _RESERVATIONS.mkdir(mode=0o700, exist_ok=True)
        with open(_RESERVATIONS / "lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            with contextlib.suppress(FileNotFoundError):
                if time.time() - mark.stat().st_mtime < RESERVED_SECONDS:
                    return False
            mark.touch()
            return True
    except OSError:  # a read-only or missing temporary folder: nothing to coordinate through
        return True


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    return free_ports(1)[0]


# Packages Keras tries to import when TensorFlow imports it, and which our child processes
# never use: a server or a cluster task starts ~1.5 s sooner without them.
KERAS_EXTRAS = ("sklearn", "scipy", "matplotlib")
_MODULE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def skip_imports(names: Sequence[str] = KERAS_EXTRAS) -> None:
    """Make `import NAME` raise ImportError at once in this process (call before TensorFlow's
    import); Keras then leaves its optional scikit-learn, SciPy and matplotlib parts out."""
    for name in names:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


def python(
    program: str | os.PathLike[str], args: Sequence[str] = (), skip: Sequence[str] = ()
) -> list[str]:
    """The argv of a Python child with this interpreter, the one way the project starts one:
    `python script.py ARGS` for a `.py` file, `python -m package.module ARGS` for a module
    (`python("scalelab", ["serve", ...])` for the project's own commands), with the `skip`
    packages left out of the child's imports (skip_imports) when there are any."""
    script = str(program).endswith(".py")
    if script and not Path(program).is_file():
        raise FileNotFoundError(f"No script {Path(program).resolve()}.")
    if not script and not _MODULE.fullmatch(str(program)):
        raise ValueError(f"{program!r} is neither a .py script nor a module name like 'pkg.mod'.")
    target = str(Path(program).resolve()) if script else str(program)
    if not skip:
        return [sys.executable, target, *args] if script else [sys.executable, "-m", target, *args]
    run = f"run_path({target!r}" if script else f"run_module({target!r}, alter_sys=True"
    code = (
        f"from scalelab.processes.children import skip_imports; skip_imports({list(skip)!r}); "
        f"import runpy; runpy.{run}, run_name='__main__')"
    )
    return [sys.executable, "-c", code, *args]


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Hide what native code (and Python) writes to file descriptor 2, unless the block fails."""
    sys.stderr.flush()
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            os.write(2, sink.read())
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
