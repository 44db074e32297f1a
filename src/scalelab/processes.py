"""Child processes: run one to its end or start one logging to a file, and quote its log's tail
when it fails; free TCP ports; native stderr kept quiet; the `with` block of whatever runs until
stop() (servers, clusters, links). Importing this never imports TensorFlow."""

from __future__ import annotations
import __future__

import contextlib
import inspect
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

TAIL_LINES = 12
RESULT_ENV = "SCALELAB_RESULT"  # where a child writes its JSON result (see write_result)
_ERROR_LINE = re.compile(r"(?:\w+\.)*\w*(?:Error|Exception|Exit|Interrupt)\b")
# Run as `python -c THIS PARENT_PID COMMAND...`: the kernel SIGKILLs the process when the thread
# that started it ends (PR_SET_PDEATHSIG = 1, kept across exec; it exits at once if that parent
# is already gone), then it becomes COMMAND, same pid. Done after exec, not in a preexec_fn: with
# one, Popen must fork() instead of vfork(), and a child forked from a process running grpcio can
# abort before its exec (gRPC's fork handlers: "epoll_wait error: Bad file descriptor").
_DIE_WITH_PARENT = (
    f"import ctypes, os, sys; ctypes.CDLL(None).prctl(1, {int(signal.SIGKILL)}); "
    "os.getppid() == int(sys.argv[1]) or os._exit(1); os.execvp(sys.argv[2], sys.argv[2:])"
)


def tail(text: str, lines: int = TAIL_LINES) -> str:
    """The last lines of a log, led by the last Python error line if it is a little earlier."""
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
) -> subprocess.CompletedProcess[str]:
    """Run `command` to its end with its output captured; if it fails or overruns `timeout`,
    raise `error` naming `what` failed, with the tail of its output (stdout, then stderr)."""
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

    process: subprocess.Popen[bytes]
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
) -> LoggedProcess:
    """Start `command` with no stdin, appending its stdout and stderr to `log_path`.

    With `own_group` it leads a process group of its own (so a signal to the group reaches what
    it starts), and on Linux the kernel kills it when the thread that started it ends.
    """
    path = Path(log_path)
    with open(path, "ab") as log:  # append mode: reading never moves the writer
        offset = log.tell()
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
    """`n` distinct TCP ports nobody listens on right now (another program may take them later)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, not {n!r}.")
    sockets = [socket.socket() for _ in range(n)]
    try:
        for probe in sockets:
            probe.bind(("", 0))  # all interfaces, as TensorFlow's gRPC servers bind
        return [int(probe.getsockname()[1]) for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    return free_ports(1)[0]


# Packages Keras tries to import when TensorFlow imports it, and which our child processes
# never use: a server or a cluster task starts ~1.5 s sooner without them.
KERAS_EXTRAS = ("sklearn", "scipy", "matplotlib")


def skip_imports(names: Sequence[str] = KERAS_EXTRAS) -> None:
    """Make `import NAME` raise ImportError at once in this process (call before TensorFlow's
    import); Keras then leaves its optional scikit-learn, SciPy and matplotlib parts out."""
    for name in names:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


def python_module(module: str, args: Sequence[str] = (), skip: Sequence[str] = ()) -> list[str]:
    """The argv of `python -m MODULE ARGS` with this interpreter, the `skip` packages left out
    of the child's imports (skip_imports) when there are any."""
    if not skip:
        return [sys.executable, "-m", module, *args]
    code = (
        f"from scalelab.processes import skip_imports; skip_imports({list(skip)!r}); "
        f"import runpy; runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"
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


def write_result(result: Mapping[str, Any]) -> None:
    """Inside a child: save its JSON result where its parent reads it (and print it to the log)."""
    text = json.dumps(result, sort_keys=True, default=_json_value)
    print(f"scalelab result: {text}", flush=True)
    if path := os.environ.get(RESULT_ENV):
        temporary = Path(f"{path}.tmp")
        temporary.write_text(text + "\n")
        temporary.replace(path)  # atomic: the parent never reads half a file


def _json_value(value: Any) -> Any:
    """NumPy and TensorFlow scalars and arrays as plain Python values (else their text)."""
    if hasattr(value, "numpy"):
        value = value.numpy()
    return value.tolist() if hasattr(value, "tolist") else str(value)


_PROGRAM = '''"""{name}, as written in the notebook, run as a program by scalelab."""
from __future__ import annotations  # annotations naming what the program does not import

import json
import sys

from scalelab.processes import write_result

{source}

if __name__ == "__main__":
    write_result({name}(**json.loads(sys.argv[1])) or {{}})
'''


def function_program(
    function: Callable[..., Any],
    folder: str | os.PathLike[str],
    also: Sequence[Callable[..., Any]] = (),
) -> Path:
    """Write `function`'s source as a program (`python PROGRAM KWARGS_JSON`) into `folder`.

    The program calls the function with the keyword arguments given as JSON and saves what it
    returns (a dict, or None) with write_result. The function runs in a new process: it must
    import what it uses inside its body, and use no name defined elsewhere in the notebook.
    The functions in `also` are written above it, as the program's own functions (the program
    can reach them by name, or as attributes of `sys.modules["__main__"]`).
    """
    name = _function_name(function)
    sources = [_function_source(other) for other in [*also, function]]
    path = Path(folder) / f"{name}.py"
    path.write_text(_PROGRAM.format(name=name, source="\n\n\n".join(sources)))
    return path


def standalone(function: Callable[..., Any]) -> Callable[..., Any]:
    """`function` defined again from its source alone, as a program function_program writes runs
    it: a name it uses but neither imports nor defines raises NameError when it is called."""
    namespace: dict[str, Any] = {"__name__": "standalone"}
    name = _function_name(function)
    flags = __future__.annotations.compiler_flag  # as in the program: annotations unevaluated
    exec(compile(_function_source(function), f"<{name}>", "exec", flags=flags), namespace)
    return namespace[name]  # type: ignore[no-any-return]


def _function_name(function: Callable[..., Any]) -> str:
    name = getattr(function, "__name__", "")
    if not callable(function) or not name.isidentifier():
        raise ValueError(f"Pass a function defined with def, not {function!r}.")
    return str(name)


def _function_source(function: Callable[..., Any]) -> str:
    """The dedented source of a def'd function (ValueError in plain words if there is none)."""
    name = _function_name(function)
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError) as error:
        raise ValueError(
            f"The source of {name} cannot be found ({error}): define it with def in a cell "
            "or a module, then run that cell again."
        ) from None
    return textwrap.dedent(source).rstrip()


def run_function(
    function: Callable[..., Any],
    kwargs: Mapping[str, Any] | None = None,
    *,
    what: str,
    env: Mapping[str, str] | None = None,
    timeout: float,
) -> dict[str, Any]:
    """Run `function(**kwargs)` in a new Python process (function_program) and return its result.

    `env` is added to this process's environment. If the function raises or overruns
    `timeout`, raise RuntimeError naming `what`, with the tail of the child's output.
    """
    with tempfile.TemporaryDirectory(prefix="scalelab-program-") as scratch:
        program = function_program(function, scratch)
        result_path = Path(scratch) / "result.json"
        child_env = {**os.environ, **(env or {}), RESULT_ENV: str(result_path)}
        command = [sys.executable, str(program), json.dumps(dict(kwargs or {}))]
        run(command, what, env=child_env, timeout=timeout)
        if not result_path.exists():
            raise RuntimeError(f"{what} ended without a result.")
        result: dict[str, Any] = json.loads(result_path.read_text())
    return result
