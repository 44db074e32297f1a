"""The remote backend: a TF Serving that already runs (docker compose, JupyterHub, Kubernetes).

start() cannot launch that server, so it adds the models to it with ModelService's
HandleReloadConfigRequest, and stop() takes them away again. The server and this machine must see
the models at the same paths (a shared folder: SCALELAB_SERVING_REMOTE_ROOT). A reload replaces
the server's whole model list, so the list of every client's models is kept in that folder
(`.scalelab/`, under a file lock); entries of processes that died are dropped.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from ..processes import pids
from .server import OPENER, Models, Request, Server, ServerStartError, at_exit_once

REST_ENV, GRPC_ENV = "SCALELAB_SERVING_REMOTE_REST", "SCALELAB_SERVING_REMOTE_GRPC"
ROOT_ENV, FLAGS_ENV = "SCALELAB_SERVING_REMOTE_ROOT", "SCALELAB_SERVING_REMOTE_FLAGS"
# tensorflow_model_server's defaults for the flags a request may ask the running server to have.
FLAG_DEFAULTS = {
    "file_system_poll_wait_seconds": "1",
    "allow_version_labels_for_unavailable_models": "false",
    "enable_batching": "false",
    "model_config_file_poll_wait_seconds": "0",
    "rest_api_timeout_in_ms": "30000",
    "max_num_load_retries": "5",
    "load_retry_interval_micros": "60000000",
}
_OWN: dict[tuple[str, str], Remote] = {}  # (gRPC target, model name) this process added


@dataclass(frozen=True)
class Remote:
    """Where the running server is, the folder it shares with us, and the flags it runs with."""

    rest_url: str
    grpc_target: str
    root: Path | None = None
    flags: tuple[str, ...] = ()

    @classmethod
    def from_env(cls) -> Remote | None:
        """The server named by SCALELAB_SERVING_REMOTE_*, or None when they are not set."""
        rest, target = os.environ.get(REST_ENV), os.environ.get(GRPC_ENV)
        if not (rest and target):
            return None
        root = os.environ.get(ROOT_ENV)
        flags = tuple(os.environ.get(FLAGS_ENV, "").split())
        return cls(rest.rstrip("/"), target, Path(root) if root else None, flags)

    def __str__(self) -> str:
        return f"the TF Serving at {self.rest_url} (gRPC {self.grpc_target})"


def answers(remote: Remote) -> bool:
    """True when the remote server's REST API answers (any JSON answer will do)."""
    try:
        OPENER.open(f"{remote.rest_url}/v1/models/scalelab-ping", timeout=3)
    except urllib.error.HTTPError:
        return True  # 404 "Could not find any versions": it is up
    except OSError:
        return False
    return True


def _flag_values(flags: Sequence[str]) -> dict[str, str]:
    values = {}
    for flag in flags:
        name, has_value, value = flag.removeprefix("--").partition("=")
        values[name] = value.lower() if has_value else "true"
    return values


def refusal(remote: Remote, models: Models, extra_flags: Sequence[str]) -> str | None:
    """Why the remote server cannot serve this request as asked, or None when it can."""
    running = _flag_values(remote.flags)
    for name, value in _flag_values(extra_flags).items():
        if running.get(name, FLAG_DEFAULTS.get(name)) != value:
            return f"{remote} was not started with --{name}={value}"
    for name, base_path in models:
        if remote.root and not base_path.is_relative_to(remote.root):
            return f"the base path {base_path} is outside {remote.root}, the folder {remote} shares"
        with _registry(remote) as (_, entries):
            entry = entries.get(name)
        if entry is not None:
            who = "another start() in this process" if _mine(entry) else f"process {entry['pid']}"
            return f"{remote} already serves a model named {name} (for {who})"
    return None


def _mine(entry: dict[str, Any]) -> bool:
    return entry.get("pid") == os.getpid() and entry.get("host") == socket.gethostname()


def _alive(entry: dict[str, Any]) -> bool:
    if entry.get("host") != socket.gethostname():
        return True  # another machine's: it removes its own
    pid = entry.get("pid")
    return not isinstance(pid, int) or pids.alive(pid)


@contextlib.contextmanager
def _registry(remote: Remote) -> Iterator[tuple[Path, dict[str, dict[str, Any]]]]:
    """The models every client added to this server, locked while the block runs; the entries
    of processes that died are left out."""
    folder = (remote.root or Path.home()) / ".scalelab"
    folder.mkdir(parents=True, exist_ok=True)
    stem = "remote-" + re.sub(r"[^A-Za-z0-9_.-]", "_", remote.grpc_target)
    path = folder / f"{stem}.json"
    with open(folder / f"{stem}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            entries = json.loads(path.read_text()) if path.is_file() else {}
        except ValueError:
            entries = {}
        yield path, {name: e for name, e in entries.items() if _alive(e)}


def _reload(remote: Remote, entries: dict[str, dict[str, Any]], timeout: float) -> None:
    """Send the whole model list to the server (HandleReloadConfigRequest)."""
    import grpc
    from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc

    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.SetInParent()
    for entry in entries.values():
        text_format.Parse(entry["config"], config.model_config_list.config.add())
    request = model_management_pb2.ReloadConfigRequest(config=config)
    with grpc.insecure_channel(remote.grpc_target) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        try:
            response = stub.HandleReloadConfigRequest(request, timeout=timeout)
        except grpc.RpcError as error:
            raise ServerStartError(
                f"{remote} refused the new model list: {error.code().name}: {error.details()}"
            ) from None
    if response.status.error_code:
        raise ServerStartError(
            f"{remote} refused the new model list: {response.status.error_message}"
        )


def _configs(models: Models, config_file: Path | None) -> dict[str, str]:
    """name -> ModelConfig text: the config file's entries, or one model with default policy."""
    if config_file is not None:
        parsed = model_server_config_pb2.ModelServerConfig()
        text_format.Parse(config_file.read_text(), parsed)
        return {c.name: text_format.MessageToString(c) for c in parsed.model_config_list.config}
    (name, base_path), *_ = models
    config = model_server_config_pb2.ModelConfig(
        name=name, base_path=str(base_path), model_platform="tensorflow"
    )
    return {name: text_format.MessageToString(config)}


def _remove(remote: Remote, names: Sequence[str], timeout: float = 60) -> None:
    """Take these models of ours off the server (quietly if it is gone)."""
    with _registry(remote) as (path, entries):
        mine = [n for n in names if n in entries and _mine(entries[n])]
        for name in mine:
            del entries[name]
            _OWN.pop((remote.grpc_target, name), None)
        path.write_text(json.dumps(entries, indent=1))
        if mine:
            with contextlib.suppress(ServerStartError):  # the server is gone: nothing to undo
                _reload(remote, entries, timeout)


def _remove_all_of_ours() -> None:
    for remote in {remote for remote in _OWN.values()}:
        names = [name for (target, name) in list(_OWN) if target == remote.grpc_target]
        with contextlib.suppress(Exception):
            _remove(remote, names)


class RemoteServer(Server):
    """Models added to a TF Serving that runs elsewhere; stop() removes them, not the server."""

    def __init__(self, remote: Remote, names: Sequence[str], log: str) -> None:
        super().__init__("remote", 0, 0, names)
        self.remote = remote
        self.rest_url, self.grpc_target = remote.rest_url, remote.grpc_target
        self._log = log
        self._stopped = False

    def stop(self) -> None:
        """Take this handle's models off the remote server (the server keeps running)."""
        if not self._stopped:
            self._stopped = True
            _remove(self.remote, self.model_names)
            self._log += f"Removed {list(self.model_names)} from {self.remote}.\n"

    def logs(self) -> str:
        """What this handle did; the server's own logs are where it runs."""
        return self._log + "(The server's own logs are where it runs: `docker compose logs`.)"

    def exit_code(self) -> int | None:
        """None while the remote server answers, -1 when it does not."""
        return None if self._stopped or answers(self.remote) else -1


def launch(request: Request, timeout: float = 120) -> RemoteServer:
    """Add the models to the running server named by the environment (ports are its own)."""
    remote = Remote.from_env()
    if remote is None:
        raise ServerStartError(f"No running TF Serving is named: set {REST_ENV} and {GRPC_ENV}.")
    reason = refusal(remote, request.models, request.extra_flags)
    if reason:
        raise ServerStartError(f"Cannot use the remote backend: {reason}.")
    configs = _configs(request.models, request.config_file)
    with _registry(remote) as (path, entries):
        before = dict(entries)
        for name, text in configs.items():
            entries[name] = {"config": text, "pid": os.getpid(), "host": socket.gethostname()}
        try:
            _reload(remote, entries, timeout)
        except ServerStartError:
            with contextlib.suppress(ServerStartError):  # leave the server as it was
                _reload(remote, before, timeout)
            raise
        path.write_text(json.dumps(entries, indent=1))
    _OWN.update({(remote.grpc_target, name): remote for name in configs})
    at_exit_once(_remove_all_of_ours)
    return RemoteServer(remote, list(configs), f"Added {sorted(configs)} to {remote}.\n")


def unavailable() -> str | None:
    """Why no running TF Serving can be used (none named, or it does not answer), else None."""
    remote = Remote.from_env()
    if remote is None:
        return f"no running TF Serving is named ({REST_ENV} and {GRPC_ENV} are unset)"
    if not answers(remote):
        return f"{remote} did not answer: start it, or point {REST_ENV} and {GRPC_ENV} at it"
    return None


def passed_over(models: Models, extra_flags: Sequence[str]) -> str | None:
    """Why the running server cannot serve these models with these flags, or None (also when
    there is no server: unavailable() says so)."""
    remote = Remote.from_env()
    if remote is None or not answers(remote):
        return None
    return refusal(remote, models, extra_flags)


def chosen() -> str:
    """Why start() picked the running server."""
    return f"{Remote.from_env()} answered"


def describe(server: Server) -> str:
    """What serves: the running server's addresses."""
    return f"the TF Serving at {server.rest_url} / {server.grpc_target}"
