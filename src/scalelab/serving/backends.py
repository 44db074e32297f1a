"""The table of serving backends, in the order start() tries them: what each needs, why start()
passes one over, why it picked one, how each launches, and how to name what serves."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from . import binary, docker, local, remote
from .server import Models, Request, Server


class Backend(Protocol):
    """One way to run TF Serving: every backend module defines these five functions."""

    def unavailable(self) -> str | None:
        """Why it cannot run here at all (may pull an image), or None when it can."""

    def passed_over(self, models: Models, flags: Sequence[str]) -> str | None:
        """Why start() passes it over for these models and flags (asked before unavailable();
        it may still be asked for by name), or None."""

    def chosen(self) -> str:
        """Why start() picked it (it is available and not passed over)."""

    def launch(self, request: Request) -> Server:
        """Start a server for `request`."""

    def describe(self, server: Server) -> str:
        """What serves, for figure titles."""


# In the order start() tries them.
BACKENDS: dict[str, Backend] = {
    "remote": remote,
    "docker": docker,
    "binary": binary,
    "local": local,
}
