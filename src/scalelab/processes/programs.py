"""A learner's function run as a program: its source written to a file (`function_program`), run in
a new process (`run_function`) or by every task of a cluster, its JSON result handed back to the
parent (`write_result`); `standalone` checks that the function needs nothing else from the notebook.
Importing this never imports TensorFlow."""

from __future__ import annotations
import __future__

import inspect
import json
import os
import tempfile
import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from scalelab.processes.children import python, run

RESULT_ENV = "SCALELAB_RESULT"  # where a child writes its JSON result (see write_result)


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

from scalelab.processes.programs import write_result

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
        command = python(program, [json.dumps(dict(kwargs or {}))])
        run(command, what, env=child_env, timeout=timeout, warm=True)
        if not result_path.exists():
            raise RuntimeError(f"{what} ended without a result.")
        result: dict[str, Any] = json.loads(result_path.read_text())
    return result
