"""The docker backend: the real `tensorflow/serving` image, run with the Docker SDK."""

from __future__ import annotations

import contextlib
import gc
import os
import shlex
import warnings
import weakref
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

from .server import Models, Server, ServerStartError, resolve_models

IMAGE = f"tensorflow/serving:{version('tensorflow-serving-api')}"  # same release as our protos
CONFIG_IN_CONTAINER = "/models/models.config"


def engine_available() -> bool:
    """True when a Docker engine answers a ping."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # the SDK leaks a socket on failure
        try:
            import docker

            client = docker.from_env(timeout=3)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except Exception:  # no socket, engine down, bad DOCKER_HOST: all mean "no engine"
            return False
        finally:
            gc.collect()


def _container_spec(
    models: Models, config_file: Path | None, extra_flags: Sequence[str]
) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """Mounts (host -> container), environment and arguments for the image's entrypoint.

    One model is mounted at /models/<name> (the image's convention). With a config file, each
    base path is mounted at the same path inside, so the file's absolute paths stay valid.
    """
    if config_file is None:
        (name, base_path), *_ = models
        return {str(base_path): f"/models/{name}"}, {"MODEL_NAME": name}, list(extra_flags)
    mounts = {str(base): str(base) for _, base in models}
    mounts[str(config_file)] = CONFIG_IN_CONTAINER
    return mounts, {}, [f"--model_config_file={CONFIG_IN_CONTAINER}", *extra_flags]


def docker_run_command(
    model_base_path: str | os.PathLike | None = None,
    model_name: str | None = None,
    *,
    model_config_file: str | os.PathLike | None = None,
    rest_port: int = 8501,
    grpc_port: int = 8500,
    extra_flags: Sequence[str] = (),
) -> str:
    """The `docker run` command equivalent to start(..., backend="docker"), for display."""
    models, config_file = resolve_models(model_base_path, model_name, model_config_file, False)
    mounts, env, args = _container_spec(models, config_file, extra_flags)
    parts = ["docker", "run", "--rm", "-p", f"127.0.0.1:{grpc_port}:8500"]
    parts += ["-p", f"127.0.0.1:{rest_port}:8501"]
    for host, inside in mounts.items():
        parts += ["-v", f"{host}:{inside}:ro"]
    for key, value in env.items():
        parts += ["-e", f"{key}={value}"]
    return shlex.join([*parts, IMAGE, *args])


def _remove(container: Any) -> None:
    with contextlib.suppress(Exception):  # already gone
        container.remove(force=True)


class DockerServer(Server):
    """A tensorflow/serving container; stop() removes it."""

    def __init__(self, container: Any, rest_port: int, grpc_port: int, names: list[str]) -> None:
        super().__init__("docker", rest_port, grpc_port, names)
        self.container = container
        self._final_logs: str | None = None
        self._finalizer = weakref.finalize(self, _remove, container)

    def stop(self) -> None:
        """Stop and remove the container, keeping its logs."""
        if self._final_logs is None:
            with contextlib.suppress(Exception):  # already stopped or removed
                self.container.stop(timeout=5)
            self._final_logs = self.logs()
            self._finalizer()

    def logs(self) -> str:
        """The container's output so far."""
        if self._final_logs is not None:
            return self._final_logs
        try:
            return self.container.logs().decode(errors="replace")
        except Exception:  # removed
            return ""

    def exit_code(self) -> int | None:
        """The container's exit code, or None while it runs."""
        self.container.reload()
        if self.container.status in ("exited", "dead"):
            return int(self.container.attrs["State"]["ExitCode"])
        return None


def launch(
    models: Models,
    config_file: Path | None,
    rest_port: int,
    grpc_port: int,
    extra_flags: Sequence[str] = (),
) -> DockerServer:
    """Run the image detached, with its ports on 127.0.0.1 and the models mounted read-only."""
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except Exception as error:
        raise ServerStartError(f"No Docker engine answered ({error}): start Docker.") from None
    mounts, env, args = _container_spec(models, config_file, extra_flags)
    try:
        container = client.containers.run(
            IMAGE,
            args,
            detach=True,
            environment=env,
            ports={"8500/tcp": ("127.0.0.1", grpc_port), "8501/tcp": ("127.0.0.1", rest_port)},
            volumes={host: {"bind": inside, "mode": "ro"} for host, inside in mounts.items()},
        )
    except docker.errors.DockerException as error:
        raise ServerStartError(
            f"Docker could not run {IMAGE}: {error}. Try `docker pull {IMAGE}` (the image is "
            "amd64 only), or use another backend."
        ) from None
    return DockerServer(container, rest_port, grpc_port, [name for name, _ in models])
