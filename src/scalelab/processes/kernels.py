"""Warm Jupyter kernels: a kernel provisioner that forks each kernel from the fork server.

A notebook's first cell spends seconds importing TensorFlow; a test run or a class's grading
starts dozens of kernels. Kernels whose kernelspec names this provisioner (`scalelab-warm`) are
forked from a process that has imported it already (processes/forkserver), with the argv,
environment and folder Jupyter gives them; where that cannot be done, they start as any kernel
does. What a kernel writes to its own stdout and stderr (not to the notebook) is copied to this
process's stderr when the kernel is cleaned up, as it would have reached it directly.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning.local_provisioner import LocalProvisioner

from . import forkserver


class WarmProvisioner(LocalProvisioner):
    """LocalProvisioner whose kernels are forked from the fork server when they can be."""

    log_path: Path | None = None

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        """Fork the kernel warm; start it as LocalProvisioner does where that cannot be done."""
        env = kwargs.get("env") or dict(os.environ)
        cwd = kwargs.get("cwd")
        handle, name = tempfile.mkstemp(prefix="scalelab-kernel-", suffix=".log")
        os.close(handle)
        self.log_path = Path(name)
        forked = forkserver.start(cmd, self.log_path, env, str(cwd) if cwd else None)
        if forked is None:
            self.log_path.unlink()
            self.log_path = None
            return await super().launch_kernel(cmd, **kwargs)
        self.process = forked  # type: ignore[assignment]  # Popen-like: poll, wait, signals
        self.pid = self.pgid = forked.pid  # it leads its own group, as LocalProvisioner's does
        self.cwd = cwd or Path.cwd()
        return self.connection_info

    async def cleanup(self, restart: bool = False) -> None:
        """Clean up as LocalProvisioner does, and pass on what the kernel wrote to its log."""
        await super().cleanup(restart)
        if self.log_path is not None and self.log_path.exists():
            written = self.log_path.read_text(errors="replace")
            if written:
                sys.stderr.write(written)
            self.log_path.unlink()
            self.log_path = None
