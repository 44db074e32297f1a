"""What a `docker run` command for TF Serving means, read from its argv as Docker and the image
read it (ports, mounts, environment, the server's own flags), and running one for real.

Chapter 2 grades a learner's command by this meaning, not by its spelling:
`problems(argv, base_path, model_name, rest_port, grpc_port)` lists what would go wrong.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from .server import Server, wait_until_available

# `docker run` options that take a value (as the next argument, or after `=`); others are flags.
_VALUED = {
    "-p": "publish",
    "--publish": "publish",
    "-v": "volume",
    "--volume": "volume",
    "--mount": "mount",
    "-e": "env",
    "--env": "env",
    "--entrypoint": "entrypoint",
    "--name": "name",
    "-l": "label",
    "--label": "label",
    "-w": "workdir",
    "--workdir": "workdir",
    "-u": "user",
    "--user": "user",
    "--network": "network",
    "--net": "network",
    "-h": "hostname",
    "--hostname": "hostname",
    "-m": "memory",
    "--memory": "memory",
    "--cpus": "cpus",
    "--restart": "restart",
    "--platform": "platform",
    "--gpus": "gpus",
    "--env-file": "env-file",
    "--shm-size": "shm-size",
    "--pull": "pull",
}
_FLAGS = {"--rm", "-d", "--detach", "-t", "--tty", "-i", "--interactive", "--init", "--read-only"}
IMAGE_REPOSITORY = "tensorflow/serving"
# tensorflow/serving's entrypoint script, and the environment its Dockerfile sets.
_IMAGE_ENV = {"MODEL_NAME": "model", "MODEL_BASE_PATH": "/models"}


@dataclass(frozen=True)
class Mount:
    """A bind mount: a host folder seen at `target` inside the container."""

    source: str
    target: str
    read_only: bool


@dataclass
class DockerRun:
    """A parsed `docker run` command line."""

    image: str
    publish: dict[int, int] = field(default_factory=dict)  # container port -> host port
    mounts: list[Mount] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    entrypoint: str | None = None
    server_args: list[str] = field(default_factory=list)  # after the image
    options: list[str] = field(default_factory=list)  # every option before the image, as given

    def server_flags(self) -> dict[str, str]:
        """tensorflow_model_server's flags as the server sees them (the last one of a name wins),
        with the image's entrypoint script expanded when no --entrypoint replaces it."""
        args = list(self.server_args)
        if self.entrypoint is None:
            env = {**_IMAGE_ENV, **self.env}
            name, base = env["MODEL_NAME"], env["MODEL_BASE_PATH"]
            args = [
                "--port=8500",
                "--rest_api_port=8501",
                f"--model_name={name}",
                f"--model_base_path={base}/{name}",
                *args,
            ]
        elif PurePosixPath(self.entrypoint).name != "tensorflow_model_server":
            return {}
        flags = {"port": "8500", "rest_api_port": "0"}
        for arg in args:
            name, _, value = arg.removeprefix("--").partition("=")
            flags[name] = value
        return flags


class ArgvError(ValueError):
    """An argv Docker would refuse, or that is not `docker run`."""


def _split_option(args: list[str], i: int) -> tuple[str, str | None, int]:
    """(option, value or None, index of the next argument) for args[i]."""
    arg = args[i]
    if arg.startswith("--"):
        name, has_value, value = arg.partition("=")
        if name in _VALUED and not has_value:
            if i + 1 >= len(args):
                raise ArgvError(f"{name} needs a value")
            return name, args[i + 1], i + 2
        return name, value if has_value else None, i + 1
    name = arg[:2]
    if name in _VALUED:
        if len(arg) > 2:
            return name, arg[2:].removeprefix("="), i + 1
        if i + 1 >= len(args):
            raise ArgvError(f"{name} needs a value")
        return name, args[i + 1], i + 2
    return arg, None, i + 1


def _publish(spec: str) -> tuple[int, int]:
    """(container port, host port) of a -p value: [ip:]host:container[/proto], or the long
    form published=...,target=..."""
    if "=" in spec:
        parts = dict(item.partition("=")[::2] for item in spec.split(","))
        return int(parts["target"]), int(parts.get("published") or 0)
    spec = spec.split("/")[0]
    pieces = spec.rsplit(":", 2)
    container = int(pieces[-1])
    host = pieces[-2] if len(pieces) >= 2 else ""
    return container, int(host) if host else 0


def _volume(spec: str) -> Mount:
    pieces = spec.split(":")
    if len(pieces) < 2:
        raise ArgvError(f"-v {spec}: an anonymous volume, not a folder of this machine")
    options = pieces[2].split(",") if len(pieces) > 2 else []
    return Mount(pieces[0], pieces[1], "ro" in options)


def _mount(spec: str) -> Mount:
    parts: dict[str, str] = {}
    for item in spec.split(","):
        key, has_value, value = item.partition("=")
        parts[key] = value if has_value else "true"
    source = parts.get("source") or parts.get("src") or ""
    target = parts.get("target") or parts.get("destination") or parts.get("dst") or ""
    flag = parts.get("readonly", parts.get("ro", "false")).lower()
    if parts.get("type", "volume") != "bind":
        raise ArgvError(f"--mount {spec}: use type=bind to mount a folder of this machine")
    return Mount(source, target, flag in ("true", "1"))


def parse(argv: Sequence[str] | str) -> DockerRun:
    """Read a `docker run` (or `docker container run`) command line."""
    args = shlex.split(argv) if isinstance(argv, str) else [str(arg) for arg in argv]
    if not args or PurePosixPath(args[0]).name != "docker":
        raise ArgvError(f"the command must start with docker, not {args[:1]}")
    skip = 2 if args[1:2] == ["run"] else 3 if args[1:3] == ["container", "run"] else 0
    rest = args[skip:]
    if not skip:
        raise ArgvError(f"not a `docker run` command: {shlex.join(args[:3])}")
    publish: dict[int, int] = {}
    mounts: list[Mount] = []
    env: dict[str, str] = {}
    entrypoint: str | None = None
    i = 0
    while i < len(rest) and rest[i].startswith("-"):
        name, value, i = _split_option(rest, i)
        kind = _VALUED.get(name)
        if kind is None and name not in _FLAGS and not set(name[1:]) <= set("dti"):
            raise ArgvError(f"unknown option {name} (or an option and its value joined wrongly)")
        if kind == "publish" and value is not None:
            container, host = _publish(value)
            publish[container] = host
        elif kind == "volume" and value is not None:
            mounts.append(_volume(value))
        elif kind == "mount" and value is not None:
            mounts.append(_mount(value))
        elif kind == "env" and value is not None:
            key, has_value, setting = value.partition("=")
            env[key] = setting if has_value else os.environ.get(key, "")
        elif kind == "entrypoint":
            entrypoint = value
    if i >= len(rest):
        raise ArgvError("no image: the image name comes after the options")
    options = rest[:i]
    return DockerRun(rest[i], publish, mounts, env, entrypoint, rest[i + 1 :], options)


def _inside(path: str, run: DockerRun) -> tuple[str, Mount] | None:
    """The host folder that a path inside the container is, and the mount that shows it."""
    inside = PurePosixPath(path)
    for mount in sorted(run.mounts, key=lambda m: -len(m.target)):
        target = PurePosixPath(mount.target)
        if inside == target or target in inside.parents:
            return str(PurePosixPath(mount.source) / inside.relative_to(target)), mount
    return None


def problems(
    argv: Sequence[str] | str,
    base_path: str | os.PathLike[str],
    model_name: str,
    rest_port: int = 8501,
    grpc_port: int = 8500,
) -> list[str]:
    """What keeps this `docker run` from serving base_path's versions as `model_name` (gRPC on
    host port `grpc_port`, REST on `rest_port`, from a read-only mount); [] if nothing."""
    try:
        run = parse(argv)
    except (ArgvError, ValueError, KeyError) as error:
        return [f"Docker would not read this command: {error}"]
    found: list[str] = []
    repository = run.image.rsplit(":", 1)[0] if ":" in run.image.split("/")[-1] else run.image
    if repository.removeprefix("docker.io/") != IMAGE_REPOSITORY:
        found.append(f"the image is {run.image}, not {IMAGE_REPOSITORY}[:tag]")
    flags = run.server_flags()
    if not flags:
        return [*found, f"--entrypoint {run.entrypoint} does not run tensorflow_model_server"]
    for what, flag, host in (("gRPC", "port", grpc_port), ("REST", "rest_api_port", rest_port)):
        port = int(flags.get(flag, "0") or 0)
        if not port:
            found.append(f"the server opens no {what} port (--{flag})")
        elif run.publish.get(port) != host:
            where = [f"{h}:{c}" for c, h in run.publish.items()]
            found.append(
                f"{what}: the server listens on {port} inside the container; publish it as "
                f"{host}:{port} (published: {where or 'nothing'})"
            )
    if flags.get("model_config_file"):
        found.append("serve the model with its name and base path, not a config file, here")
        return found
    if flags.get("model_name") != model_name:
        found.append(f"the model is named {flags.get('model_name')!r}, not {model_name!r}")
    seen = _inside(flags.get("model_base_path", ""), run)
    wanted = os.path.realpath(base_path)
    if seen is None:
        found.append(
            f"the model base path {flags.get('model_base_path')!r} is not a mounted folder "
            f"(mounts: {[f'{m.source}:{m.target}' for m in run.mounts]})"
        )
    else:
        host_folder, mount = seen
        if os.path.realpath(host_folder) != wanted:
            found.append(
                f"inside the container {flags.get('model_base_path')} is {host_folder} of this "
                f"machine, not the base path {wanted}"
            )
        if not mount.read_only:
            found.append(f"mount {mount.source} read-only (:ro): the server only reads models")
    return found


def run_detached(argv: Sequence[str] | str, image: str) -> str:
    """Run a `docker run` argv with the docker CLI, detached and labelled as scalelab's, with
    `image` in place of tensorflow/serving; return the container id (the caller removes it)."""
    from .docker import HOST_LABEL, OWNER_LABEL

    args = shlex.split(argv) if isinstance(argv, str) else [str(arg) for arg in argv]
    run = parse(args)
    cli = shutil.which("docker")
    if cli is None:
        raise FileNotFoundError("the docker command line is not installed here")
    options = [opt for opt in run.options if opt not in ("--rm", "-t", "-i", "-it", "-ti", "--tty")]
    ours = ["-d", "--label", f"{OWNER_LABEL}={os.getpid()}"]
    ours += ["--label", f"{HOST_LABEL}={socket.gethostname()}"]
    command = [cli, "run", *ours, *options, image, *run.server_args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode:
        raise RuntimeError(f"{shlex.join(command)} failed: {done.stderr.strip()}")
    return done.stdout.strip().splitlines()[-1]


def start(
    argv: Sequence[str] | str,
    model_name: str,
    rest_port: int,
    grpc_port: int,
    timeout: float = 120,
) -> Server:
    """Run a learner's `docker run` argv (image: the docker backend's) and return the running
    server once `model_name` is AVAILABLE (ServerStartError, container removed, if not)."""
    from .docker import attach, image

    server = attach(run_detached(argv, image()), rest_port, grpc_port, [model_name])
    wait_until_available(server, timeout)
    return server
