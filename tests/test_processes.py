"""A learner's function run as its own program: results, plain errors, deadlines, fallback, the
functions it carries beside its own and the names it uses without importing them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scalelab import course
from scalelab.processes import children, programs


def doubled_as_numpy(x):
    import numpy as np

    return {"twice": np.float32(2 * x), "list": np.arange(2)}


def crashes():
    raise ValueError("the learner's bug")


def hangs():
    import time

    time.sleep(60)


def test_run_function_returns_what_the_function_returns_with_numpy_as_plain_values():
    assert programs.run_function(doubled_as_numpy, {"x": 3}, what="double", timeout=60) == {
        "twice": 6.0,
        "list": [0, 1],
    }


def test_run_function_that_raises_names_the_program_and_quotes_its_traceback():
    with pytest.raises(RuntimeError, match="your program failed") as failed:
        programs.run_function(crashes, what="your program", timeout=60)
    assert "ValueError: the learner's bug" in str(failed.value)


def test_run_function_that_hangs_is_stopped_at_its_deadline_and_says_so():
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="did not finish within 3 s"):
        programs.run_function(hangs, what="a hanging program", timeout=3)
    assert time.monotonic() - started < 30


def test_a_lambda_cannot_be_shipped_and_the_error_says_to_use_def(tmp_path):
    with pytest.raises(ValueError, match="defined with def"):
        programs.function_program(lambda: None, tmp_path)


def test_run_program_falls_back_to_the_reference_and_prints_why(capsys):
    def run(program):
        return program()

    def reference():
        return "reference"

    assert course.run_program(lambda: crashes, reference, run) == "reference"
    assert "ValueError" in capsys.readouterr().out


def helper(x):
    return x + 1


def main_program(x):
    import sys

    return {"y": sys.modules["__main__"].helper(x)}


def uses_numpy_unimported(x):
    return np.sum(x)  # noqa: F821 -- as a learner might: np is the notebook's


def test_a_program_carries_the_functions_it_is_given_beside_its_own(tmp_path):
    program = programs.function_program(main_program, tmp_path, also=[helper])
    assert "def helper(x)" in program.read_text()
    done = subprocess.run(
        [sys.executable, str(program), json.dumps({"x": 1})], capture_output=True, text=True,
        timeout=60, env={**os.environ, "PYTHONPATH": str(Path(programs.__file__).parents[2])},
    )  # fmt: skip
    assert '"y": 2' in done.stdout, done.stderr


def test_standalone_shows_a_name_a_function_uses_without_importing_it():
    assert programs.standalone(helper)(1) == 2
    with pytest.raises(NameError, match="np"):
        programs.standalone(uses_numpy_unimported)([1])


def test_free_ports_never_gives_a_port_another_process_was_just_given(tmp_path, monkeypatch):
    """The kernel may offer the same free port twice before a slow server binds it (the serving
    suite once talked to another test's server this way): a claim file per port prevents it."""
    from scalelab.processes import children

    monkeypatch.setattr(children, "_RESERVATIONS", tmp_path / "ports")
    script = """if True:
        import random, socket, sys
        from pathlib import Path
        from scalelab.processes import children

        class Kernel(socket.socket):  # offers 130 ports only: three callers must meet
            def getsockname(self):
                return ("", random.randrange(50000, 50130))

        children.socket.socket = Kernel
        children._RESERVATIONS = Path(sys.argv[1])
        print(*children.free_ports(40))
    """
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path / "ports")], stdout=subprocess.PIPE
        )
        for _ in range(3)
    ]
    given = [set(map(int, run.communicate()[0].split())) for run in runs]
    assert all(len(ports) == 40 for ports in given)
    assert not (given[0] & given[1] or given[0] & given[2] or given[1] & given[2])
    taken = next(iter(given[0]))
    assert not children._reserve(taken), "a port claimed a moment ago is not given again"
    old = time.time() - children.RESERVED_SECONDS - 1
    os.utime(tmp_path / "ports" / str(taken), (old, old))
    assert children._reserve(taken), "a stale claim lapses"


def test_a_process_is_alive_until_it_is_reaped_whoever_owns_it():
    from scalelab.processes import pids

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    assert pids.alive(os.getpid()) and pids.alive(1)
    child.wait()
    assert not pids.alive(child.pid)


def test_a_log_tail_is_led_by_the_last_error_line_a_long_usage_text_pushed_out():
    usage = [f"  --flag{i}=0" for i in range(15)]  # within the 5 x 5 lines searched
    log = "\n".join(["starting", "ERROR: --bogus is not a flag", "usage: serve [flags]", *usage])
    assert children.tail(log, 5).splitlines() == [
        "ERROR: --bogus is not a flag",
        "...",
        *usage[-3:],
    ]
    python = "\n".join(["Traceback (most recent call last):", "ValueError: bad", *usage])
    assert children.tail(python, 5).splitlines()[0] == "ValueError: bad"
