"""Install the course into a hosted notebook's Python (Colab), keeping what is installed there.

Every chapter's first cell clones the repository and runs this script when `scalelab` is not
importable. It installs only what the host lacks, pinned as in requirements.txt, holding every
installed distribution at its version (pip constraints); if pip cannot satisfy that, it holds
only PROTECTED (TensorFlow, Keras, NumPy, the Jupyter stack) and says what it changed. The
packages tied to TensorFlow's release (the serving API, tf_keras, TensorBoard) follow the
installed TensorFlow's minor version. Run it with the Python that runs the notebook:
`python colab/install.py`.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The course works on these TensorFlow minor versions (2.20 is what Colab ships; 2.21 is pinned).
SUPPORTED_TF = ("2.20", "2.21")
# Released with TensorFlow: their minor version must equal TensorFlow's.
TIED_TO_TF = ("tensorflow-serving-api", "tf-keras", "tensorboard")
# Kept whatever happens: replacing these under a running notebook breaks it or the host's front end.
PROTECTED = (
    "tensorflow", "keras", "tensorboard", "numpy", "ipykernel", "ipython", "jupyter-client",
    "jupyter-core", "jupyter-server", "notebook", "tornado", "traitlets", "google-colab",
)  # fmt: skip
# Not needed in a hosted notebook: its own Jupyter front end has no nbgrader Validate button.
NOT_FOR_HOSTED = ("jupyterlab", "notebook", "nbgrader", "docker")


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed() -> dict[str, str]:
    """{name: version} of every distribution the running Python has."""
    found = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found[canonical(name)] = dist.version
    return found


def pinned() -> dict[str, str]:
    """{name: requirement} from requirements.txt."""
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        requirement = line.split("#")[0].strip()
        if requirement:
            pins[canonical(re.split(r"[=<>!~ ]", requirement)[0])] = requirement
    return pins


def missing(have: dict[str, str]) -> list[str]:
    """Requirements for what the course needs and this Python lacks."""
    tf_version = have.get("tensorflow", "")
    minor = ".".join(tf_version.split(".")[:2])
    if tf_version and minor not in SUPPORTED_TF:
        sys.exit(
            f"This Python has TensorFlow {tf_version}; the course works with TensorFlow "
            f"{' or '.join(SUPPORTED_TF)}. Install one of them (pip install tensorflow==2.21.0) "
            "and run this cell again."
        )
    needed = []
    for name, requirement in pinned().items():
        if name in have or name in NOT_FOR_HOSTED:
            continue
        if name in TIED_TO_TF and minor:
            requirement = f"{name}=={minor}.*"
        needed.append(requirement)
    return needed


def pip_install(requirements: list[str], keep: dict[str, str]) -> bool:
    """pip install `requirements` with every package in `keep` held at its version."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as constraints:
        constraints.write("".join(f"{name}=={version}\n" for name, version in keep.items()))
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--constraint", constraints.name]
    return subprocess.run([*pip, *requirements]).returncode == 0


def main() -> None:
    started = time.monotonic()
    have = installed()
    needed = missing(have)
    if needed:
        print("Installing what this Python lacks:", ", ".join(needed))
        if not pip_install(needed, have):
            print("Those need other versions of some installed packages: keeping only", PROTECTED)
            core = {name: version for name, version in have.items() if name in PROTECTED}
            if not pip_install(needed, core):
                sys.exit("pip could not install the course here (its message is above).")
    if not pip_install(["--no-deps", str(REPO)], have):
        sys.exit("pip could not install the course library (its message is above).")
    now = installed()
    added = sorted(f"{name}=={now[name]}" for name in set(now) - set(have))
    changed = [f"{name} {old} -> {now.get(name)}" for name, old in have.items()
               if now.get(name) != old]  # fmt: skip
    print(f"Installed {len(added)} packages in {time.monotonic() - started:.0f} s, replacing "
          f"{', '.join(changed) or 'nothing'}: {', '.join(added)}")  # fmt: skip


if __name__ == "__main__":
    main()
