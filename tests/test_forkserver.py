"""Warm starts: a child forked from a process that has imported TensorFlow behaves as the same
child started cold (argv, environment, folder, log, exit code, signals, clean-up)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import pytest

from scalelab.processes import children, forkserver

pytestmark = pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="warm starts need Linux")

PROGRAM = """if True:
    import os, sys
    print("argv", sys.argv[1:], "env", os.environ["SCALELAB_PROBE"], "cwd", os.getcwd())
    print("tensorflow imported before we started:", "tensorflow" in sys.modules, flush=True)
    raise SystemExit(int(sys.argv[1]))
"""


def warm(command: list[str], tmp_path: Path, **env: str) -> children.LoggedProcess:
    return children.start(command, tmp_path / "log", {**os.environ, **env}, warm=True)


def test_a_warm_child_gets_its_argv_environment_folder_and_log_and_reports_its_exit_code(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    child = warm([sys.executable, "-c", PROGRAM, "3"], tmp_path, SCALELAB_PROBE="seen")
    assert isinstance(child.process, forkserver.ForkedProcess)
    assert child.process.wait(120) == 3
    assert f"argv ['3'] env seen cwd {tmp_path}" in child.output()
    assert "tensorflow imported before we started: True" in child.output()


def test_a_warm_module_and_script_run_as_main_with_their_folder_first_on_the_path_and_their_name(
    tmp_path,
):
    script = tmp_path / "tool.py"
    script.write_text(
        "import sys; print('main', __name__, sys.path[0], open('/proc/self/comm').read().strip())\n"
    )
    by_path = warm([sys.executable, str(script)], tmp_path)
    assert by_path.process.wait(120) == 0
    assert f"main __main__ {tmp_path} tool.py" in by_path.output(), "named after its program"
    by_module = warm([sys.executable, "-m", "json.tool", "--help"], tmp_path)
    assert by_module.process.wait(120) == 0
    assert "usage:" in by_module.output()


def test_an_exception_is_printed_and_exits_1_and_a_signal_gives_its_negative_number(tmp_path):
    failed = warm([sys.executable, "-c", "raise ValueError('the learner bug')"], tmp_path)
    assert failed.process.wait(120) == 1
    assert "ValueError: the learner bug" in failed.tail()
    sleeper = warm([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path)
    assert sleeper.process.poll() is None
    assert os.getpgid(sleeper.process.pid) == sleeper.process.pid, "it leads its own group"
    sleeper.stop(grace=10)
    assert sleeper.process.returncode == -signal.SIGTERM


def test_a_warm_run_returns_stdout_and_stderr_apart_as_a_cold_run_does():
    program = """if True:
        import sys
        print("out, forked:", "tensorflow" in sys.modules)
        print("err", file=sys.stderr)
        sys.exit(int(sys.argv[1]))
    """
    for warm_start in (False, True):
        done = children.run([sys.executable, "-c", program, "0"], "p", timeout=60, warm=warm_start)
        assert (done.stdout, done.stderr) == (f"out, forked: {warm_start}\n", "err\n")
        with pytest.raises(RuntimeError, match=r"(?s)p failed \(exit 3\).*out.*err"):
            children.run([sys.executable, "-c", program, "3"], "p", timeout=60, warm=warm_start)


def test_a_child_whose_exit_arrives_with_its_pid_reports_that_exit(monkeypatch):
    ours, servers = socket.socketpair()
    servers.sendall(b'{"pid": 4242}\n{"exit": 3}\n')  # one read may bring both lines
    monkeypatch.setattr(forkserver, "_connect", lambda env: ours)
    monkeypatch.setattr(forkserver, "_pidfds_work", lambda: True)
    child = forkserver.start([sys.executable, "-c", "pass"], Path("log"), dict(os.environ))
    assert child is not None and child.pid == 4242
    assert child.wait(5) == 3
    servers.close()


def test_warm_children_draw_different_random_numbers_as_cold_ones_do(tmp_path):
    draw = "import random, numpy; print(random.random(), numpy.random.random())"
    draws = []
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        draws.append(warm([sys.executable, "-c", draw], tmp_path / name))
    assert [child.process.wait(60) for child in draws] == [0, 0]
    first, second = (child.output().split() for child in draws)
    assert first[0] != second[0] and first[1] != second[1]


def test_a_signal_sent_as_soon_as_the_pid_is_known_ends_the_child_by_that_signal(tmp_path):
    sleepers = [
        warm([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path) for _ in range(8)
    ]
    for sleeper in sleepers:
        sleeper.process.terminate()
    assert [s.process.wait(60) for s in sleepers] == [-signal.SIGTERM] * len(sleepers)


def test_a_warm_child_is_killed_when_the_process_that_started_it_ends(tmp_path):
    caller = (
        "import os, sys; from scalelab.processes import children; "
        "child = children.start([sys.executable, '-c', 'import time; time.sleep(120)'], "
        "sys.argv[1], dict(os.environ), warm=True); print(child.process.pid, flush=True)"
    )
    done = subprocess.run(
        [sys.executable, "-c", caller, str(tmp_path / "log")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    pid = int(done.stdout)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists(), "the child outlived its caller"


def test_other_interpreters_flags_and_the_off_switch_start_cold(tmp_path):
    assert forkserver.start(["/bin/echo", "hi"], tmp_path / "log", dict(os.environ)) is None
    assert forkserver.start([sys.executable, "-u", "-c", ""], tmp_path / "log", {}) is None
    off = {**os.environ, forkserver.SWITCH: "0"}
    assert forkserver.start([sys.executable, "-c", ""], tmp_path / "log", off) is None
    with pytest.MonkeyPatch.context() as patch:  # a kernel or seccomp profile without pidfds
        patch.setattr(os, "pidfd_open", mock.Mock(side_effect=OSError(38, "not implemented")))
        assert forkserver.start([sys.executable, "-c", ""], tmp_path / "log", {}) is None
    cold = children.start([sys.executable, "-c", "pass"], tmp_path / "log", off, warm=True)
    assert isinstance(cold.process, subprocess.Popen)
    assert cold.process.wait(60) == 0


def test_a_graded_kernels_warm_children_each_get_the_guard_of_their_own_grading_run(tmp_path):
    """The autograding guard is set up by sitecustomize at start: a warm child runs it again
    with its own environment, so two grading runs never share one's forbidden paths."""
    from scalelab.grading.preprocessors.guardedexecute import KERNEL_GUARD

    answers = tmp_path / "answers"
    answers.mkdir()
    (answers / "key.txt").write_text("the answer")
    peek = f"open({str(answers / 'key.txt')!r}).read(); print('read it')"
    outcome = {}
    for run, forbidden in (("first", answers), ("second", tmp_path / "elsewhere")):
        guard = {
            "PYTHONPATH": str(KERNEL_GUARD),
            "SCALELAB_GUARD_FORBID": str(forbidden),
            "SCALELAB_GUARD_ALLOW": str(tmp_path / "work"),
            "SCALELAB_GUARD_REPORT": str(tmp_path / f"{run}.report"),
        }
        child = warm([sys.executable, "-c", peek], tmp_path, **guard)
        assert isinstance(child.process, forkserver.ForkedProcess)
        outcome[run] = (child.process.wait(120), child.output())
    assert outcome["first"][0] == 1 and "is off limits" in outcome["first"][1]
    assert (tmp_path / "first.report").read_text().startswith("file\t")
    assert outcome["second"][0] == 0 and "read it" in outcome["second"][1]


def test_stop_idle_ends_a_fork_server_once_its_children_have_ended(tmp_path, monkeypatch):
    private = Path(tempfile.mkdtemp(prefix="fs-"))  # its own fork server: other tests use theirs
    monkeypatch.setattr(forkserver, "_FOLDER", private)
    try:
        sleeper = warm([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path)
        assert isinstance(sleeper.process, forkserver.ForkedProcess)
        server = next(private.glob("*.sock"))
        forkserver.stop_idle()
        time.sleep(1)
        assert sleeper.process.poll() is None, "a fork server with a child keeps serving it"
        sleeper.stop(grace=10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and server.exists():
            time.sleep(0.1)
        assert not server.exists(), "the idle fork server ended"
    finally:
        shutil.rmtree(private, ignore_errors=True)


def test_a_warm_kernel_runs_cells_with_tensorflow_imported_and_can_be_interrupted(tmp_path):
    from conftest import WARM_KERNELS
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import start_new_kernel

    specs = KernelSpecManager(kernel_dirs=[f"{WARM_KERNELS}/kernels"])
    manager, client = start_new_kernel(kernel_name="python3", kernel_spec_manager=specs)
    try:
        assert isinstance(manager.provisioner.process, forkserver.ForkedProcess)
        log = manager.provisioner.log_path
        outputs: list[str] = []
        probe = "import os, sys; print('tensorflow' in sys.modules, os.getpgid(0) == os.getpid())"
        reply = client.execute_interactive(
            probe, timeout=60, output_hook=lambda m: outputs.append(m["content"].get("text", ""))
        )
        assert reply["content"]["status"] == "ok"
        assert "".join(outputs).split() == ["True", "True"]
        client.execute("import time; time.sleep(60)")
        time.sleep(1)
        manager.interrupt_kernel()
        reply = client.get_shell_msg(timeout=30)
        assert reply["content"]["ename"] == "KeyboardInterrupt"
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    assert not log.exists(), "its log is passed on and removed"
