"""Binder: repo2docker builds binder/, not the Dockerfile, into the learner's image, and leaves
solutions/ out. Checked with repo2docker's own code up to the Docker build (no base image can be
pulled here): its Dockerfile (`repo2docker --no-build`) and the build context it would send."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import REPO
from repo2docker.app import Repo2Docker


class RecordingClient:
    """Stands in for the Docker client: keeps the build context instead of building it."""

    context: list[str]

    def build(self, fileobj: io.BytesIO, **kwargs: object) -> list[object]:
        with tarfile.open(fileobj=fileobj) as tar:
            self.context = tar.getnames()
        return []


@pytest.fixture(scope="module")
def build_context(tmp_path_factory) -> set[str]:
    """The repository paths repo2docker would copy into the image (relative to it)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(REPO)  # repo2docker reads the repository from its working directory
        app = Repo2Docker()
        buildpack = next(bp for BP in app.buildpacks if (bp := BP(app.base_image)).detect())
        buildpack.platform = "linux/amd64"  # as Binder builds
        client = RecordingClient()
        list(buildpack.build(client, "scalelab-binder", 0, {}, [], {}))
    return {name.removeprefix("src/") for name in client.context if name.startswith("src/")}


def test_binder_builds_binder_folder_with_python_3_11_not_the_dockerfile():
    repo2docker = Path(sys.executable).with_name("repo2docker")
    dry_run = subprocess.run(
        [repo2docker, "--no-build", "--no-run", "--debug", str(REPO)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    dockerfile = dry_run.stdout + dry_run.stderr
    assert dry_run.returncode == 0, dockerfile[-2000:]
    assert 'pip install --no-cache-dir -r "binder/requirements.txt"' in dockerfile
    assert "python=3.11" in dockerfile or "python-3.11" in dockerfile
    assert "python:3.11.14-slim" not in dockerfile  # our Dockerfile's base: not used by Binder


def test_binder_image_has_the_notebooks_and_library_but_no_solutions_tests_or_gradebook(
    build_context,
):
    assert "notebooks/01_savedmodel/01_savedmodel.ipynb" in build_context
    assert "src/scalelab/__init__.py" in build_context
    assert "nbgrader_config.py" in build_context  # the Validate button uses the course config
    leaked = {
        path for path in build_context
        if path.split("/")[0] in {"solutions", "tests", ".git", ".ci", "build"}
        or path.startswith(("grader/gradebook.db", "grader/submitted", ".venv"))
    }  # fmt: skip
    assert not leaked, sorted(leaked)[:10]


def test_readme_binder_badge_opens_the_first_chapter_in_jupyterlab():
    readme = (REPO / "README.md").read_text()
    badge = "mybinder.org/v2/gh/scalelab/scalelab/main?urlpath=lab/tree/notebooks/01_savedmodel/"
    assert badge in readme
