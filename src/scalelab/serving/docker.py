"""The docker backend: the `tensorflow/serving` image, run with the Docker SDK.

Every container is named `scalelab-serving-<pid>-<n>` and labelled with its owner's pid and host,
so leftovers of a process that died are removed at the next start. By hand, in Python:
`scalelab.serving.cleanup()`; in a shell:
`docker rm -f $(docker ps -aq --filter label=scalelab.owner)`.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import os
import platform
import shlex
import socket
import warnings
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

from ..processes import pids
from .server import Models, Request, Server, ServerStartError, at_exit_once, resolve_models

IMAGE_ENV = "SCALELAB_SERVING_IMAGE"
# The newest release with a published image (tensorflow-serving-api 2.21 has no 2.21 image yet).
DEFAULT_IMAGE = "tensorflow/serving:2.20.0"
OWNER_LABEL, HOST_LABEL = "scalelab.owner", "scalelab.host"
# Flags whose value is a file the server reads: its folder is mounted at the same path inside.
FILE_FLAGS = (
    "model_config_file",
    "batching_parameters_file",
    "monitoring_config_file",
    "ssl_config_file",
    "platform_config_file",
    "tensorflow_session_config_file",
    "thread_pool_factory_config_file",
)
_names = itertools.count(1)


def image() -> str:
    """The image to run: $SCALELAB_SERVING_IMAGE, else the pinned tensorflow/serving release."""
    return os.environ.get(IMAGE_ENV) or DEFAULT_IMAGE


def passed_over(models: Models, flags: Sequence[str]) -> str | None:
    """Why the default image is a poor choice on this machine (no arm64 build), else None."""
    if platform.machine().lower() in ("arm64", "aarch64") and not os.environ.get(IMAGE_ENV):
        return (
            f"{DEFAULT_IMAGE} has no arm64 build and would run under emulation; "
            "set SCALELAB_SERVING_BACKEND=docker to use it anyway"
        )
    return None


@contextlib.contextmanager
def _client(timeout: int = 60) -> Iterator[Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # the SDK leaks a socket on failure
        import docker

        try:
            client = docker.from_env(timeout=timeout)
            try:
                yield client
            finally:
                client.close()
        finally:
            gc.collect()


def engine_available() -> bool:
    """True when a Docker engine answers a ping."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # the SDK leaks a socket on failure
        try:
            with _client(timeout=3) as client:
                return bool(client.ping())
        except Exception:  # no socket, engine down, bad DOCKER_HOST: all mean "no engine"
            return False
        finally:
            gc.collect()


def unavailable() -> str | None:
    """Why the docker backend cannot run here (no engine, or no image and no way to pull it),
    or None when it can. Pulls the image (with a progress bar) when it is missing."""
    if not engine_available():
        return "no Docker engine answers here"
    import docker

    with _client() as client:
        try:
            client.images.get(image())
        except docker.errors.ImageNotFound:
            try:
                _pull(client, image())
            except ServerStartError as error:
                return str(error)
    return None


def _mount_folders(paths: Sequence[Path]) -> list[str]:
    """The folders to bind-mount so each path is visible; folders inside another are dropped."""
    folders = sorted({str(p) for p in paths})
    kept: list[str] = []
    for folder in folders:
        if not any(folder == k or folder.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(folder)
    return kept


def _container_spec(
    models: Models, config_file: Path | None, extra_flags: Sequence[str]
) -> tuple[dict[str, str], list[str]]:
    """Mounts (host folder -> container folder) and tensorflow_model_server's arguments.

    One model is mounted at /models/<name> (the image's convention). Files named in flags and
    the base paths of a config file are mounted by folder at the same path inside, so their
    absolute paths stay valid and an atomic replace of a file is seen inside.
    """
    args, same_path = ["--port=8500", "--rest_api_port=8501"], []
    mounts: dict[str, str] = {}
    if config_file is None:
        (name, base_path), *_ = models
        mounts[str(base_path)] = f"/models/{name}"
        args += [f"--model_name={name}", f"--model_base_path=/models/{name}"]
    else:
        same_path += [base for _, base in models] + [config_file.parent]
        args.append(f"--model_config_file={config_file}")
    for flag in extra_flags:
        name, has_value, value = flag.removeprefix("--").partition("=")
        if name in FILE_FLAGS and has_value and value:
            path = Path(value).expanduser().resolve()
            if not path.is_file():
                raise ServerStartError(f"{flag}: no such file on this machine.")
            same_path.append(path.parent)
            flag = f"--{name}={path}"
        args.append(flag)
    mounts.update({folder: folder for folder in _mount_folders(same_path)})
    return mounts, args


def docker_run_command(
    model_base_path: str | os.PathLike[str] | None = None,
    model_name: str | None = None,
    *,
    model_config_file: str | os.PathLike[str] | None = None,
    rest_port: int = 8501,
    grpc_port: int = 8500,
    extra_flags: Sequence[str] = (),
) -> str:
    """The `docker run` command equivalent to start(..., backend="docker"), for display."""
    models, config_file = resolve_models(model_base_path, model_name, model_config_file, False)
    mounts, args = _container_spec(models, config_file, extra_flags)
    parts = ["docker", "run", "--rm", "--init", "--entrypoint", "tensorflow_model_server"]
    parts += ["-p", f"127.0.0.1:{grpc_port}:8500", "-p", f"127.0.0.1:{rest_port}:8501"]
    for host, inside in mounts.items():
        parts += ["-v", f"{host}:{inside}:ro"]
    return shlex.join([*parts, image(), *args])


def _owned_by_dead_processes(container: Any) -> bool:
    labels = container.labels
    if labels.get(HOST_LABEL) != socket.gethostname() or not labels.get(OWNER_LABEL, "").isdigit():
        return False
    return not pids.alive(int(labels[OWNER_LABEL]))


def cleanup(everything: bool = False) -> list[str]:
    """Remove scalelab's serving containers whose owner process is gone (all of them with
    `everything`); return their names."""
    removed = []
    with _client() as client:
        for container in client.containers.list(all=True, filters={"label": OWNER_LABEL}):
            if everything or _owned_by_dead_processes(container):
                _remove(container)
                removed.append(container.name)
    return removed


def _remove_own_containers(pid: int) -> None:
    """At exit: remove the containers this process started and did not stop."""
    with contextlib.suppress(Exception), _client(timeout=10) as client:
        label = f"{OWNER_LABEL}={pid}"
        for container in client.containers.list(all=True, filters={"label": label}):
            _remove(container)


def _remove(container: Any, client: Any = None) -> None:
    with contextlib.suppress(Exception):  # already gone
        container.remove(force=True)
    if client is not None:
        client.close()


def _pull(client: Any, name: str) -> None:
    """Pull the image with a progress bar; ServerStartError when offline or the tag is missing."""
    import docker
    from tqdm.auto import tqdm

    repository, _, tag = name.rpartition(":") if ":" in name.split("/")[-1] else (name, "", "")
    print(f"scalelab.serving: pulling {name} (once; a few hundred MB)...")
    layers: dict[str, tuple[int, int]] = {}
    try:
        with tqdm(total=0, unit="B", unit_scale=True, desc=name) as bar:
            for event in client.api.pull(repository, tag or "latest", stream=True, decode=True):
                if "error" in event:
                    raise docker.errors.APIError(event["error"])
                detail = event.get("progressDetail") or {}
                if event.get("id") and detail.get("total"):
                    layers[event["id"]] = (detail.get("current", 0), detail["total"])
                    bar.total = sum(total for _, total in layers.values())
                    bar.n = sum(current for current, _ in layers.values())
                    bar.refresh()
    except docker.errors.DockerException as error:
        raise ServerStartError(
            f"Could not pull {name}: {error}. If this machine is offline, pull it once when it "
            f"is online (`docker pull {name}`); if the tag does not exist, set {IMAGE_ENV} to an "
            "image you have; or use backend='local'."
        ) from None


class DockerServer(Server):
    """A tensorflow/serving container; stop() stops it gracefully and removes it."""

    def __init__(
        self, client: Any, container: Any, rest_port: int, grpc_port: int, names: list[str]
    ) -> None:
        super().__init__("docker", rest_port, grpc_port, names)
        self.container = container
        self._final_logs: str | None = None
        self._finalizer = weakref.finalize(self, _remove, container, client)

    def stop(self) -> None:
        """SIGTERM the server (SIGKILL after 10 s), remove the container, keep its logs."""
        if self._final_logs is None:
            with contextlib.suppress(Exception):  # already stopped or removed
                self.container.stop(timeout=10)
            self._final_logs = self.logs()
            self._finalizer()

    def kill(self) -> None:
        """SIGKILL the server (docker kill), then stop() it (keeping its logs)."""
        with contextlib.suppress(Exception):  # already stopped or removed
            self.container.kill()
        self.stop()

    def logs(self) -> str:
        """The container's output so far."""
        if self._final_logs is not None:
            return self._final_logs
        try:
            return cast(bytes, self.container.logs()).decode(errors="replace")
        except Exception:
            return f"(container {self.container.name} was removed: its logs are gone)"

    def exit_code(self) -> int | None:
        """The container's exit code, None while it runs, -1 when it was removed from outside."""
        import docker

        try:
            self.container.reload()
        except docker.errors.NotFound:
            return -1
        if self.container.status in ("exited", "dead"):
            return int(self.container.attrs["State"]["ExitCode"])
        return None


def launch(request: Request) -> DockerServer:
    """Run the image detached: ports on 127.0.0.1, files mounted read-only, an init process."""
    import docker

    mounts, args = _container_spec(request.models, request.config_file, request.extra_flags)
    rest_port, grpc_port = request.rest_port, request.grpc_port
    name, container_name = image(), f"scalelab-serving-{os.getpid()}-{next(_names)}"
    try:
        cleanup()
        client = docker.from_env(timeout=60)
    except docker.errors.DockerException as error:
        raise ServerStartError(f"No Docker engine answered ({error}): start Docker.") from None
    try:
        try:
            client.images.get(name)
        except docker.errors.ImageNotFound:
            _pull(client, name)
        container = client.containers.run(
            name,
            args,
            entrypoint=["tensorflow_model_server"],
            init=True,  # forwards SIGTERM: the image's entrypoint script would ignore it
            detach=True,
            name=container_name,
            labels={OWNER_LABEL: str(os.getpid()), HOST_LABEL: socket.gethostname()},
            ports={"8500/tcp": ("127.0.0.1", grpc_port), "8501/tcp": ("127.0.0.1", rest_port)},
            volumes={host: {"bind": inside, "mode": "ro"} for host, inside in mounts.items()},
        )
    except docker.errors.DockerException as error:
        with contextlib.suppress(docker.errors.DockerException):  # created, but it did not start
            client.containers.get(container_name).remove(force=True)
        client.close()
        raise ServerStartError(
            f"Docker could not run {name}: {error}. Is the engine running (`docker info`)? "
            "Or use another backend (backend='local')."
        ) from None
    except BaseException:
        client.close()
        raise
    at_exit_once(_remove_own_containers, os.getpid())
    return DockerServer(client, container, rest_port, grpc_port, request.model_names)


def attach(
    container_id: str, rest_port: int, grpc_port: int, model_names: Sequence[str]
) -> DockerServer:
    """A handle on a container started otherwise (e.g. by the docker CLI): stop() removes it."""
    import docker

    client = docker.from_env(timeout=60)
    try:
        container = client.containers.get(container_id)
    except BaseException:
        client.close()
        raise
    return DockerServer(client, container, rest_port, grpc_port, list(model_names))


def chosen() -> str:
    """Why start() picked Docker."""
    return "a Docker engine answered"


def describe(server: Server) -> str:
    """What serves: the image the container runs."""
    try:
        name = server.container.attrs["Config"]["Image"]  # type: ignore[attr-defined]
    except Exception:  # no container details: name the image start() would use
        name = image()
    real = str(name).startswith("tensorflow/serving")
    return f"TF Serving in Docker, image {name}" if real else f"Docker image {name}"
