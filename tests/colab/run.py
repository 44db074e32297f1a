"""A chapter on a Colab-like runtime, set up by its own first cell (`make test-colab`).

Builds a fresh venv of Python 3.12 with pip and what Colab preinstalls (tests/colab/colab-like.txt),
executes the chapter's solution in fast mode on a kernel of that Python (the first cell clones
this repository's committed HEAD and runs colab/install.py), then checks that no preinstalled
package was replaced. What was added, and how long each step took, goes to build/colab/report.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import papermill
from uv import find_uv_bin

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "build" / "colab"


def versions(python: Path) -> dict[str, str]:
    """{distribution: version} installed for `python`."""
    listing = subprocess.run(
        [python, "-c", "import importlib.metadata as m, json; "
         "print(json.dumps({d.metadata['Name'].lower(): d.version for d in m.distributions()}))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return dict(json.loads(listing.stdout))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", required=True, help="a Python 3.12 interpreter")
    parser.add_argument("--chapter", default="04_tflite")
    args = parser.parse_args()
    shutil.rmtree(OUT, ignore_errors=True)
    (OUT / "content").mkdir(parents=True)
    venv, python = OUT / "venv", OUT / "venv" / "bin" / "python"
    started = time.monotonic()
    # uv links the packages from its cache (seconds, where pip took over a minute to download and
    # unpack them); --seed adds pip, which Colab has and the first cell uses; bytecode compiled as
    # pip (and Colab's image) would have it.
    uv = find_uv_bin()
    subprocess.run([uv, "venv", "-q", "--seed", "--no-python-downloads", "--clear",
                    "--python", args.python, venv], check=True)  # fmt: skip
    colab = REPO / "tests" / "colab" / "colab-like.txt"
    subprocess.run([uv, "pip", "install", "-q", "--compile-bytecode", "--python", python,
                    "-r", colab], check=True)  # fmt: skip
    built = time.monotonic() - started
    before = versions(python)
    version = subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                             capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip

    kernel = OUT / "kernels" / "colab-like"
    kernel.mkdir(parents=True)
    argv = [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec = {"argv": argv, "display_name": "Colab-like", "language": "python"}
    (kernel / "kernel.json").write_text(json.dumps(spec))
    os.environ["JUPYTER_PATH"] = str(OUT)
    os.environ["SCALELAB_REPO"] = f"file://{REPO}"  # where the first cell clones the course from
    started = time.monotonic()
    papermill.execute_notebook(
        REPO / "solutions" / args.chapter / f"{args.chapter}.ipynb",
        OUT / f"{args.chapter}.ipynb",
        parameters={"FAST": True},
        kernel_name="colab-like",
        cwd=OUT / "content",
        progress_bar=False,
    )
    executed = time.monotonic() - started

    after = versions(python)
    replaced = {name: f"{old} -> {after.get(name)}" for name, old in before.items()
                if after.get(name) != old}  # fmt: skip
    added = sorted(f"{name}=={after[name]}" for name in set(after) - set(before))
    first_cell = nbformat.read(OUT / f"{args.chapter}.ipynb", as_version=4).cells[1]
    printed = "".join(out.get("text", "") for out in first_cell.outputs)
    # pip warns once per package about an index that a machine's pip configuration names but lacks
    # (CI's does): noise that Colab does not print, left out of the report.
    printed = "\n".join(
        line for line in printed.splitlines() if not line.startswith("WARNING: Location '")
    )
    report = [
        f"Colab-like runtime: Python {version} built in {built:.0f} s with "
        f"TensorFlow {before['tensorflow']} and Keras {before['keras']}",
        f"{args.chapter} executed through its first cell in {executed:.0f} s",
        f"first cell printed: {printed.strip()}",
        f"replaced: {replaced or 'nothing'}",
        f"added ({len(added)}): {', '.join(added)}",
    ]
    (OUT / "report.txt").write_text("\n".join(report) + "\n")
    print("\n".join(report))
    if not (OUT / "content" / "results.json").is_file():
        print(f"{args.chapter} wrote no results.json: it did not run to its end")
        return 1
    return 1 if replaced else 0


if __name__ == "__main__":
    sys.exit(main())
