"""The running-server handle all backends return, and what they share: ports, flags, processes."""

from __future__ import annotations

import atexit
import json
import os
import re
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from scalelab.processes import children

Models = list[tuple[str, Path]]  # (model name, absolute base path) pairs
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
_AT_EXIT: set[Callable[..., object]] = set()  # hooks registered in this process
_HINTS = (  # (regular expression found in the logs, what to tell the user)
    ("No versions of servable", "Put each version in a numbered folder: <base path>/1/..."),
    ("Could not find base path", "The base path must be the folder holding numbered versions."),
    ("did not become available", "A model version failed to load: its error is in the log."),
    ("Invalid protobuf file", "The model config file is not a text-format ModelServerConfig."),
    (
        "not currently available for inference",
        "Labels may only name loaded versions: add them with a config reload, or pass "
        "--allow_version_labels_for_unavailable_models.",
    ),
    (
        "ddress already in use|Failed to BuildAndStart|Failed to start HTTP Server",
        "A port is taken: leave rest_port/grpc_port unset to get free ones.",
    ),
    (
        "unknown argument",
        "Check extra_flags: tensorflow_model_server flags look like --name=value.",
    ),
)


@dataclass(frozen=True)
class Request:
    """What start() asks a backend to serve: the models, their config file, ports, more flags."""

    models: Models
    config_file: Path | None
    rest_port: int
    grpc_port: int
    extra_flags: tuple[str, ...] = ()

    @property
    def model_names(self) -> list[str]:
        """The names of the models to serve."""
        return [name for name, _ in self.models]

    def flags(self) -> list[str]:
        """tensorflow_model_server's flags for this request: ports, model(s), then the extras."""
        ports = [f"--port={self.grpc_port}", f"--rest_api_port={self.rest_port}"]
        return [*ports, *model_flags(self.models, self.config_file), *self.extra_flags]


class ServerStartError(RuntimeError):
    """The model server did not come up; the message says what to fix and shows its last logs."""


def at_exit_once(hook: Callable[..., object], *args: object) -> None:
    """Call `hook(*args)` when this process exits: registered the first time only."""
    if hook not in _AT_EXIT:
        _AT_EXIT.add(hook)
        atexit.register(hook, *args)


class Server(children.Stoppable):
    """A running model server (use it in a `with` block, or call stop())."""

    def __init__(
        self, backend: str, rest_port: int, grpc_port: int, model_names: Sequence[str]
    ) -> None:
        self.backend = backend
        self.rest_url = f"http://127.0.0.1:{rest_port}"
        self.grpc_target = f"127.0.0.1:{grpc_port}"
        self.model_names = tuple(model_names)

    def logs(self) -> str:
        """Everything the server has logged so far."""
        raise NotImplementedError

    def exit_code(self) -> int | None:
        """The server's exit code, or None while it runs."""
        raise NotImplementedError

    def kill(self) -> None:
        """End the server at once, as a lost machine would (no graceful shutdown)."""
        raise NotImplementedError(f"the {self.backend} backend cannot kill its server")

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} backend={self.backend} rest_url={self.rest_url} "
            f"grpc_target={self.grpc_target} models={list(self.model_names)}>"
        )


class ProcessServer(Server):
    """A server running as a child process (the binary and local backends), logging to a file."""

    def __init__(
        self,
        backend: str,
        argv: list[str],
        env: dict[str, str],
        rest_port: int,
        grpc_port: int,
        model_names: Sequence[str],
    ) -> None:
        super().__init__(backend, rest_port, grpc_port, model_names)
        handle, log_path = tempfile.mkstemp(prefix=f"scalelab-{backend}-", suffix=".log")
        os.close(handle)
        self._final_logs: str | None = None
        self._child = children.start(argv, log_path, env, warm=True)
        self.pid = self._child.process.pid
        self._finalizer = weakref.finalize(self, _end_process, self._child)

    def stop(self) -> None:
        """Terminate the process (SIGTERM, then SIGKILL after 10 s) and keep its logs."""
        if self._final_logs is None:
            self._child.stop()
            self._final_logs = self.logs()
            self._finalizer()

    def kill(self) -> None:
        """SIGKILL the process, then stop() it (keeping its logs)."""
        if self._child.process.poll() is None:
            self._child.process.kill()
            self._child.process.wait()
        self.stop()

    def logs(self) -> str:
        """The process's stdout and stderr so far."""
        if self._final_logs is not None:
            return self._final_logs
        return self._child.output()

    def exit_code(self) -> int | None:
        """The process's exit code, or None while it runs."""
        return self._child.process.poll()


def _end_process(child: children.LoggedProcess) -> None:
    """Stop a server's process and delete its log file."""
    child.stop()
    child.log_path.unlink(missing_ok=True)


def model_flags(models: Models, config_file: Path | None) -> list[str]:
    """The tensorflow_model_server flags that name the model(s)."""
    if config_file is not None:
        return [f"--model_config_file={config_file}"]
    (name, base_path), *_ = models
    return [f"--model_name={name}", f"--model_base_path={base_path}"]


def resolve_models(
    model_base_path: str | os.PathLike[str] | None,
    model_name: str | None,
    model_config_file: str | os.PathLike[str] | None,
    check: bool = True,
) -> tuple[Models, Path | None]:
    """The (name, absolute base path) pairs to serve, and the config file's absolute path.

    With `check`, fail early (before any server starts) on paths TF Serving would wait on forever.
    """
    if model_config_file is not None:
        config_file = Path(model_config_file).expanduser().resolve()
        config = model_server_config_pb2.ModelServerConfig()
        try:
            text_format.Parse(config_file.read_text(), config)
        except (OSError, text_format.ParseError) as error:
            raise ServerStartError(
                f"Cannot use model_config_file {config_file}: {error}. It must be a text-format "
                "ModelServerConfig (model_config_list { config { name: ... base_path: ... } })."
            ) from None
        # An empty list is allowed: models can be added later (HandleReloadConfigRequest).
        models = [(c.name, Path(c.base_path)) for c in config.model_config_list.config]
    elif model_base_path is not None:
        config_file = None
        base_path = Path(model_base_path).expanduser().resolve()
        models = [(model_name or base_path.name, base_path)]
    else:
        raise ValueError(
            "Pass model_base_path (a folder of numbered versions) or model_config_file."
        )
    for name, base_path in models if check else ():
        if not base_path.is_absolute():
            raise ServerStartError(
                f"Model {name} has a relative base_path {base_path}: TF Serving needs absolute "
                "paths in model config files."
            )
        if not base_path.is_dir():
            raise ServerStartError(
                f"Could not find base path {base_path} for servable {name}: point it at the "
                "folder that holds the numbered version folders."
            )
        if not any(child.name.isdigit() and child.is_dir() for child in base_path.iterdir()):
            raise ServerStartError(
                f"No versions of servable {name} found under base path {base_path}. Did you "
                f"forget to name your leaf directory as a number (eg. '/1/')? Save the model to "
                f"{base_path / '1'}."
            )
    return models, config_file


def _states(rest_url: str, model: str) -> list[str] | None:
    """The states of a model's versions; [] for an error answer, None when nothing answers."""
    try:
        with OPENER.open(f"{rest_url}/v1/models/{quote(model, safe='')}", timeout=5) as answer:
            return [v["state"] for v in json.load(answer).get("model_version_status", [])]
    except urllib.error.HTTPError:
        return []
    except (OSError, ValueError):  # not listening yet
        return None


def failure_message(server: Server, headline: str) -> str:
    """A start-up error: what happened, what to try, and the server's last log lines."""
    logs = server.logs()
    hints = [hint for pattern, hint in _HINTS if re.search(pattern, logs)]
    return "\n".join(
        [headline, *hints[:1], "Last log lines:", children.tail(logs, 20) or "(no output)"]
    )


def wait_until_available(server: Server, timeout: float) -> None:
    """Poll REST model status until every model has an AVAILABLE version (with no models:
    until the REST API answers); if that fails or is interrupted, stop the server and raise."""
    try:
        _wait(server, timeout)
    except BaseException:
        server.stop()
        raise


def _wait(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        code = server.exit_code()
        if code is not None:
            raise ServerStartError(
                failure_message(server, f"The {server.backend} model server exited (code {code}).")
            )
        names = server.model_names or ("scalelab-no-model",)
        states = [_states(server.rest_url, name) for name in names]
        if all("AVAILABLE" in (s or []) for s in states) or (
            not server.model_names and states[0] is not None
        ):
            return
        if time.monotonic() > deadline:
            raise ServerStartError(
                failure_message(
                    server,
                    f"The {server.backend} model server did not report {list(server.model_names)} "
                    f"AVAILABLE within {timeout} s (big models or slow machines need a larger "
                    "timeout=).",
                )
            )
        time.sleep(0.2)
