"""The table of serving backends, in the order start() tries them: what each needs, why start()
passes one over, why it picked one, how each launches, and how to name what serves."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import binary, docker, local, remote
from .server import Models, Request, Server


@dataclass(frozen=True)
class Backend:
    """One way to run TF Serving, as start(), choose_backend() and the tests see it."""

    name: str
    unavailable: Callable[[], str | None]  # why it cannot run here at all, None when it can
    chosen: Callable[[], str]  # why start() picked it (it is available and not passed over)
    launch: Callable[[Request], Server]
    describe: Callable[[Server], str]  # what serves, for figure titles
    # Why start() passes it over for these models and flags (asked before `unavailable`, which
    # may pull an image; you may still ask for it by name), or None.
    passed_over: Callable[[Models, Sequence[str]], str | None] = lambda models, flags: None


BACKENDS: dict[str, Backend] = {
    backend.name: backend
    for backend in (
        Backend(
            "remote",
            remote.unavailable,
            remote.chosen,
            remote.launch,
            remote.describe,
            remote.passed_over,
        ),
        Backend(
            "docker",
            docker.unavailable_reason,
            lambda: "a Docker engine answered",
            docker.launch,
            docker.describe,
            lambda models, flags: docker.arm64_reason(),
        ),
        Backend(
            "binary",
            binary.unavailable,
            lambda: f"{binary.BINARY} is on PATH",
            binary.launch,
            binary.describe,
        ),
        Backend("local", lambda: None, lambda: "", local.launch, local.describe),
    )
}
