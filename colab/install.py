"""Install the course into a hosted notebook's Python (Colab), keeping what is installed there.

Every chapter's first cell clones the repository and runs this script when `scalelab` is not
importable. It installs only what the host lacks, pinned as in requirements.txt, and never
replaces an installed package: TensorFlow, Keras and the Jupyter stack stay as the host ships
them (every installed distribution is passed to pip as a constraint). The packages tied to
TensorFlow's release (the serving API, tf_keras, TensorBoard) follow the installed TensorFlow's
minor version. Run it with the Python that runs the notebook: `python colab/install.py`.
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


def main() -> None:
    started = time.monotonic()
    have = installed()
    needed = missing(have)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as constraints:
        constraints.write("".join(f"{name}=={version}\n" for name, version in have.items()))
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--constraint", constraints.name]
    if needed:
        print("Installing what this Python lacks:", ", ".join(needed))
        subprocess.run([*pip, *needed], check=True)
    subprocess.run([*pip, "--no-deps", str(REPO)], check=True)
    added = sorted(set(installed()) - set(have))
    print(
        f"Installed {len(added)} packages in {time.monotonic() - started:.0f} s "
        f"(TensorFlow {have.get('tensorflow', 'from requirements.txt')} kept): {', '.join(added)}"
    )


if __name__ == "__main__":
    main()
