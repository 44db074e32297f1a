"""Start, supervise and stop local multi-process tf.distribute clusters: one process per task.

Each task gets its own TF_CONFIG, environment and log file. `Cluster.wait()` returns every task's
exit code, log tail and JSON result, or stops every task and raises `ClusterError` naming the task
that failed, hung or ran out of time. It runs what it is given (a script, a module, a function)
and never imports it: the programs belong to their chapters (`scalelab.training`).
Importing this module never imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalelab.processes import children, forkserver
from scalelab.processes.programs import RESULT_ENV, function_program

TASK_TYPES = ("chief", "worker", "ps")
_ADDRESS = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})")
_POLL_SECONDS = 0.1
_STOP_GRACE_SECONDS = 3.0
# What a task logs when the port it was given was taken after we found it free (TensorFlow's
# servers, then grpcio's): the cluster starts again on new ports, up to _MAX_READDRESSES times.
_PORT_TAKEN = re.compile(
    r"Could not start gRPC server|Failed to bind to address|Address already in use"
)
_MAX_READDRESSES = 2


class ClusterError(RuntimeError):
    """A task failed, hung or ran out of time; every task was stopped. `task` names the culprit."""

    def __init__(self, message: str, task: str | None = None) -> None:
        super().__init__(message)
        self.task = task


@dataclass(frozen=True)
class TaskResult:
    """How one task ended: exit code (negative: killed by that signal), log tail, JSON result."""

    task: str
    returncode: int | None
    restarts: int
    log_tail: str
    result: dict[str, Any] | None
    log_path: Path


def make_tf_config(
    cluster: Mapping[str, Sequence[str]], task_type: str, index: int
) -> dict[str, Any]:
    """The TF_CONFIG of one task: the whole cluster, and which of its tasks this process is."""
    if not isinstance(cluster, Mapping) or not cluster:
        raise ValueError(
            "cluster must be a non-empty dict such as "
            "{'worker': ['localhost:12345', 'localhost:12346']}."
        )
    seen: set[str] = set()
    for kind, addresses in cluster.items():
        if kind not in TASK_TYPES:
            raise ValueError(f"Unknown task type {kind!r} in cluster: use {', '.join(TASK_TYPES)}.")
        if isinstance(addresses, str) or not addresses:
            raise ValueError(f"cluster[{kind!r}] must be a non-empty list of 'host:port' strings.")
        for address in addresses:
            match = _ADDRESS.fullmatch(str(address))
            if not match or not 0 < int(match[1]) < 65536:
                raise ValueError(f"{address!r} in cluster[{kind!r}] is not 'host:port'.")
            if address in seen:
                raise ValueError(f"{address} appears twice in the cluster: each task needs a port.")
            seen.add(address)
    if len(cluster.get("chief", ())) > 1:
        raise ValueError("A cluster has at most one chief.")
    if task_type not in cluster:
        raise ValueError(
            f"Task type {task_type!r} is not in the cluster, which has {', '.join(cluster)}."
        )
    count = len(cluster[task_type])
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
        raise ValueError(
            f"Index {index!r} is out of range: the cluster has {count} {task_type} task(s), "
            f"so use 0..{count - 1}."
        )
    return {
        "cluster": {kind: list(addresses) for kind, addresses in cluster.items()},
        "task": {"type": task_type, "index": index},
    }


def tf_config_json(cluster: Mapping[str, Sequence[str]], task_type: str, index: int) -> str:
    """make_tf_config as the JSON string TensorFlow reads from the TF_CONFIG variable."""
    return json.dumps(make_tf_config(cluster, task_type, index))


def local_cluster(workers: int = 2, ps: int = 0, chief: bool = False) -> dict[str, list[str]]:
    """A cluster dict with free ports on this machine, e.g. {'worker': ['localhost:4321', ...]}."""
    counts = {"chief": int(chief), "worker": workers, "ps": ps}
    addresses = iter(
        f"localhost:{port}" for port in children.free_ports(max(1, sum(counts.values())))
    )
    return {kind: [next(addresses) for _ in range(n)] for kind, n in counts.items() if n > 0}


@dataclass
class _Task:
    name: str
    tf_config: dict[str, Any]
    log_path: Path
    result_path: Path
    child: children.LoggedProcess | None = None  # the current run
    started: float = 0.0
    restarts: int = 0  # all of them, yours and automatic ones
    failures: int = 0  # automatic restarts after a failure
    down: bool = False  # killed on purpose: not a failure, stays down until restart()
    group_gone: bool = False  # its process group was killed and reaped: never signal it again

    @property
    def process(self) -> subprocess.Popen[bytes] | forkserver.ForkedProcess | None:
        """The current run's process, None before the first start."""
        return self.child.process if self.child else None

    def poll(self) -> int | None:
        """The current run's exit code: None while it runs, or before the first start."""
        return self.process.poll() if self.process else None

    def output(self) -> str:
        """What the task's current run has logged."""
        return self.child.output() if self.child else ""


class Cluster(children.Stoppable):
    """A local cluster: one process per task, started by start_cluster(); use it in a `with`."""

    def __init__(
        self,
        command: Sequence[str],
        cluster: Mapping[str, Sequence[str]],
        *,
        env: Mapping[str, str] | None = None,
        logdir: str | os.PathLike[str] | None = None,
        timeout: float = 120.0,
        max_restarts: int = 0,
        finishers: Sequence[str] | None = None,
        new_addresses: Callable[[], Mapping[str, Sequence[str]]] | None = None,
    ) -> None:
        self.command = list(command)
        # Where we chose the ports ourselves, how to choose again if one is taken before use.
        self._new_addresses = new_addresses
        self._readdresses = 0
        self.timeout = timeout
        self.max_restarts = max_restarts
        self.logdir = Path(logdir or tempfile.mkdtemp(prefix="scalelab-cluster-")).resolve()
        self.logdir.mkdir(parents=True, exist_ok=True)
        self._env = dict(env or {})
        self._tasks: dict[str, _Task] = {}
        for kind in TASK_TYPES:
            for index in range(len(cluster.get(kind, ()))):
                name = f"{kind}:{index}"
                self._tasks[name] = _Task(
                    name,
                    make_tf_config(cluster, kind, index),
                    self.logdir / f"{kind}-{index}.log",
                    self.logdir / f"{kind}-{index}.json",
                )
        if not self._tasks:
            raise ValueError("The cluster has no tasks.")
        # With parameter servers only the chief (coordinator) finishes: workers and ps serve.
        if finishers is None:
            finishers = ["chief"] if "ps" in cluster and "chief" in cluster else TASK_TYPES
        self._finishers = [name for name in self._tasks if name.split(":")[0] in finishers]
        if not self._finishers:
            raise ValueError(f"No task of the types {list(finishers)} is in the cluster.")
        self._finalizer = weakref.finalize(self, _stop_tasks, list(self._tasks.values()))

    @property
    def tasks(self) -> list[str]:
        """Task names, 'chief:0', 'worker:0', 'worker:1', 'ps:0', ..."""
        return list(self._tasks)

    def tf_config(self, task: str) -> dict[str, Any]:
        """The TF_CONFIG the task runs with."""
        return self._task(task).tf_config

    def pid(self, task: str) -> int | None:
        """The task's current process id (also its process group id), or None if never started."""
        process = self._task(task).process
        return process.pid if process else None

    def start(self) -> Cluster:
        """Start every task that is not running (if one cannot start, stop them all)."""
        try:
            for task in self._tasks.values():
                if task.process is None or task.process.poll() is not None:
                    self._spawn(task)
        except BaseException:
            self.stop()
            raise
        return self

    def kill(self, task: str) -> None:
        """SIGKILL a task's process group (a lost machine); it stays down until restart()."""
        state = self._task(task)
        _kill_group(state, signal.SIGKILL)
        state.down = True

    def restart(self, task: str) -> None:
        """Kill the task if it still runs, then start it again with the same TF_CONFIG."""
        state = self._task(task)
        _kill_group(state, signal.SIGKILL)
        state.restarts += 1
        self._spawn(state)

    def wait_for_output(self, task: str, pattern: str, timeout: float | None = None) -> str:
        """Wait until the task's current run logs a line matching `pattern`, and return that line.

        If the task exits first or time runs out, stop every task and raise ClusterError.
        """
        state = self._task(task)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        regex = re.compile(pattern)
        try:
            while True:
                ended = state.poll() == 0  # before reading: an ended task's log is complete
                for line in state.output().splitlines():
                    if regex.search(line):
                        return line
                if ended:
                    raise ClusterError(
                        f"{task} ended (exit code 0) without logging {pattern!r}. "
                        f"{self._quote(state)}\nEvery task was stopped.",
                        task,
                    )
                self._check(deadline, [task], waiting_for=f"{pattern!r} in its log")
                time.sleep(_POLL_SECONDS)
        except BaseException:
            self.stop()
            raise

    def wait(self, timeout: float | None = None) -> dict[str, TaskResult]:
        """Wait for training to finish, stop every task, and return how each one ended.

        The tasks that finish are the chief with parameter servers, else every task (or those of
        the types start_cluster's `finishers` names); the others are then stopped, unless they
        ended with exit code 0 first (as Keras Tuner's chief may). A task that fails is restarted
        up to `max_restarts` times; after that, on a hang, a timeout or an interrupt, every task
        is stopped and ClusterError (or the interrupt) is raised.
        """
        if any(task.process is None for task in self._tasks.values()):
            raise RuntimeError("Call start() before wait().")
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        try:
            while not all(self._task(name).poll() == 0 for name in self._finishers):
                self._check(deadline, self._finishers, waiting_for="training to finish")
                time.sleep(_POLL_SECONDS)
        finally:
            self.stop()
        return self.results()

    def results(self) -> dict[str, TaskResult]:
        """Every task's exit code (None while running), log tail and JSON result so far."""
        return {
            name: TaskResult(
                name,
                task.poll(),
                task.restarts,
                children.tail(task.output()),
                json.loads(task.result_path.read_text()) if task.result_path.exists() else None,
                task.log_path,
            )
            for name, task in self._tasks.items()
        }

    def log(self, task: str) -> str:
        """Everything the task logged, over all its runs."""
        path = self._task(task).log_path
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop every task: SIGTERM to each process group, SIGKILL after a grace period."""
        _stop_tasks(list(self._tasks.values()))

    def __repr__(self) -> str:
        first = next(iter(self._tasks.values()))
        lines = [
            f"Cluster {json.dumps(first.tf_config['cluster'])}, logs in {self.logdir}",
            *(
                f"  {name:9} {_state(task):22} TF_CONFIG={json.dumps(task.tf_config)}"
                for name, task in self._tasks.items()
            ),
        ]
        return "\n".join(lines)

    def _task(self, task: str) -> _Task:
        if task not in self._tasks:
            raise ValueError(f"No task {task!r}: this cluster has {', '.join(self._tasks)}.")
        return self._tasks[task]

    def _spawn(self, task: _Task) -> None:
        task.result_path.unlink(missing_ok=True)
        env = {**os.environ, **self._env, "TF_CONFIG": json.dumps(task.tf_config)}
        env[RESULT_ENV] = str(task.result_path)
        if task.restarts:
            with open(task.log_path, "a") as log:
                log.write(f"\n=== scalelab.cluster: restart {task.restarts} ===\n")
        task.child = children.start(self.command, task.log_path, env, own_group=True, warm=True)
        task.started = time.monotonic()
        task.down = task.group_gone = False

    def _check(self, deadline: float, waited: Sequence[str], waiting_for: str) -> None:
        """Restart or report failed tasks; raise ClusterError once the deadline has passed."""
        for task in self._tasks.values():
            code = task.poll()
            if code is None or code == 0 or task.down:  # exit code 0: its work is done
                continue
            if self._port_was_taken(task):
                self._start_on_new_ports(task)
                return
            if task.failures < self.max_restarts:
                print(f"scalelab.cluster: {task.name} {_exit_text(code)}, restarting it")
                task.failures += 1
                self.restart(task.name)
                continue
            raise ClusterError(
                f"{task.name} {_exit_text(code)} after {time.monotonic() - task.started:.1f} s"
                f" (restarts: {task.restarts}). {self._quote(task)}\nEvery task was stopped.",
                task.name,
            )
        if time.monotonic() > deadline:
            running = [name for name in waited if _state(self._task(name)).startswith("running")]
            culprit = self._task((running or list(waited))[0])
            raise ClusterError(
                f"Timed out waiting for {waiting_for}: {', '.join(running) or 'no task'} still "
                f"running. {culprit.name}: {self._quote(culprit)}\nEvery task was stopped.",
                culprit.name,
            )

    def _port_was_taken(self, task: _Task) -> bool:
        return (
            self._new_addresses is not None
            and self._readdresses < _MAX_READDRESSES
            and bool(_PORT_TAKEN.search(task.output()))
        )

    def _start_on_new_ports(self, failed: _Task) -> None:
        """Stop every task and start them all again on new ports (another process took one)."""
        assert self._new_addresses is not None
        self._readdresses += 1
        print(
            f"scalelab.cluster: {failed.name} could not bind its port (another process took it "
            "after it was found free): starting every task again on new ports"
        )
        _stop_tasks(list(self._tasks.values()))
        cluster = self._new_addresses()
        for task in self._tasks.values():
            kind, index = task.name.split(":")
            task.tf_config = make_tf_config(cluster, kind, int(index))
            with open(task.log_path, "a") as log:
                log.write("\n=== scalelab.cluster: started again on new ports ===\n")
            self._spawn(task)

    def _quote(self, task: _Task) -> str:
        tail = children.tail(task.output()) or "(nothing)"
        quoted = "\n".join(f"    | {line}" for line in tail.splitlines())
        return f"Last lines of {task.log_path}:\n{quoted}"


def start_cluster(
    program: str | os.PathLike[str] | Callable[..., Any],
    args: Sequence[str] = (),
    *,
    kwargs: Mapping[str, Any] | None = None,
    also: Sequence[Callable[..., Any]] = (),
    workers: int = 2,
    ps: int = 0,
    chief: bool = False,
    timeout: float = 120.0,
    env: Mapping[str, str] | None = None,
    logdir: str | os.PathLike[str] | None = None,
    legacy_keras: bool = False,
    threads: int = 1,
    max_restarts: int = 0,
    finishers: Sequence[str] | None = None,
) -> Cluster:
    """Start one process per task on localhost, running a script (`x.py`), a module (`-m`), or
    a function: its source is written to a program in the log folder, which every task runs as
    `function(**kwargs)` (programs.function_program), saving what it returns as its result;
    the functions in `also` are written into that program beside it.

    Each task gets TF_CONFIG, quiet C++ logs, `threads` intra-op threads, TF_USE_LEGACY_KERAS=1
    if `legacy_keras`, GRPC_FAIL_FAST=use_caller with parameter servers, and then `env`.
    `finishers` names the task types whose exit ends the job (default: see Cluster.wait).
    """
    if ps and not (chief and workers):
        raise ValueError("ParameterServerStrategy needs chief=True (the coordinator) and workers.")
    if workers < 0 or ps < 0 or workers + chief + ps < 1:
        raise ValueError(f"Ask for at least one task (workers={workers}, ps={ps}, chief={chief}).")
    task_env = {
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).resolve().parents[2]), *filter(None, [os.getenv("PYTHONPATH")])]
        ),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "TF_NUM_INTRAOP_THREADS": str(threads),
        "OMP_NUM_THREADS": str(threads),
        # Collectives and RPCs block inter-op threads: too few of them deadlock small machines.
        "TF_NUM_INTEROP_THREADS": str(max(threads, workers + 1)),
        "TF_USE_LEGACY_KERAS": "1" if legacy_keras else "0",
    }
    if ps:
        task_env["GRPC_FAIL_FAST"] = "use_caller"
    logdir = Path(logdir or tempfile.mkdtemp(prefix="scalelab-cluster-")).resolve()
    logdir.mkdir(parents=True, exist_ok=True)
    if callable(program):
        if args:
            raise ValueError("A function takes its arguments as kwargs=, not args.")
        program = function_program(program, logdir, also)
        args = [json.dumps(dict(kwargs or {}))]
    elif kwargs or also:
        raise ValueError("kwargs= and also= are for a function; a script or module takes args.")
    cluster = Cluster(
        children.python(program, args),
        local_cluster(workers, ps, chief),
        env={**task_env, **(env or {})},
        logdir=logdir,
        timeout=timeout,
        max_restarts=max_restarts,
        finishers=finishers,
        new_addresses=lambda: local_cluster(workers, ps, chief),
    )
    return cluster.start()


def _kill_group(task: _Task, signum: int) -> None:
    """Signal the task's process group; after SIGKILL, reap it and never signal it again.

    (Once a group is empty its id may be reused by an unrelated process.)
    """
    if task.process is None or task.group_gone:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone already
        os.killpg(task.process.pid, signum)  # also reaches what the task itself started
    if signum == signal.SIGKILL:
        task.process.wait()
        task.group_gone = True


def _stop_tasks(tasks: Sequence[_Task]) -> None:
    running = [
        (task, process) for task in tasks if (process := task.process) and process.poll() is None
    ]
    for task, _ in running:
        _kill_group(task, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_GRACE_SECONDS
    for _, process in running:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(max(0.0, deadline - time.monotonic()))
    for task in tasks:
        _kill_group(task, signal.SIGKILL)  # survivors, and children of tasks that exited


def _state(task: _Task) -> str:
    if task.process is None:
        return "not started"
    code = task.process.poll()
    if code is None:
        return f"running (pid {task.process.pid})"
    return "killed" if task.down else _exit_text(code)


def _exit_text(code: int) -> str:
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"
