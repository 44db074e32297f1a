"""Colab: every chapter opens with the same set-up cell, and colab/install.py adds only what a
hosted Python lacks. tests/colab/run.sh executes a chapter through that cell in a Colab-like
environment (Python 3.12, Colab's TensorFlow 2.20 and Keras 3)."""

from __future__ import annotations

import importlib.util
import json

import pytest
from conftest import REPO

spec = importlib.util.spec_from_file_location("colab_install", REPO / "colab" / "install.py")
assert spec and spec.loader
install = importlib.util.module_from_spec(spec)
spec.loader.exec_module(install)

NOTEBOOKS = sorted(REPO.glob("[sn][eo][lt]*/[0-9][0-9]_*/*.ipynb"))  # solutions/ and notebooks/
FIRST_CELL = (REPO / "colab" / "first_cell.py").read_text().rstrip("\n")


def test_the_globs_find_both_folders():
    assert {path.parts[-3] for path in NOTEBOOKS} == {"solutions", "notebooks"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parts[-3]}/{p.stem}")
def test_every_chapter_runs_the_colab_cell_before_any_other_code(path):
    code = [cell for cell in json.loads(path.read_text())["cells"] if cell["cell_type"] == "code"]
    assert "".join(code[0]["source"]) == FIRST_CELL, "copy colab/first_cell.py into the first cell"
    assert code[0]["metadata"]["cellView"] == "form"  # Colab shows its title, not its code
    assert code[0]["metadata"]["jupyter"]["source_hidden"]  # JupyterLab shows it collapsed


def test_the_colab_cell_does_nothing_where_scalelab_is_installed(monkeypatch):
    ran = []
    monkeypatch.setattr("subprocess.run", lambda *args, **kwargs: ran.append(args))
    exec(FIRST_CELL, {})
    assert not ran


def test_colab_install_keeps_tensorflow_and_follows_its_minor_version():
    colab = {"tensorflow": "2.20.0", "keras": "3.10.0", "numpy": "2.0.2", "notebook": "6.5.7"}
    needed = install.missing(colab)
    assert "tensorflow-serving-api==2.20.*" in needed
    assert "tf-keras==2.20.*" in needed
    assert "tensorboard==2.20.*" in needed
    names = {install.canonical(r.split("=")[0]) for r in needed}
    assert not names & set(colab), "an installed package would be replaced"
    assert not names & {"jupyterlab", "nbgrader", "docker"}, "Colab has its own front end"
    assert "keras-tuner==1.4.8" in needed  # the rest as pinned in requirements.txt


def test_colab_install_without_tensorflow_takes_the_pinned_one():
    needed = install.missing({})
    assert "tensorflow==2.21.0" in needed
    assert "tensorflow-serving-api==2.21.0" in needed


def test_colab_install_refuses_a_tensorflow_the_course_does_not_support_and_says_what_to_do():
    with pytest.raises(SystemExit, match=r"TensorFlow 2\.19\.0.*pip install tensorflow==2\.21"):
        install.missing({"tensorflow": "2.19.0"})


def test_this_python_has_what_colab_install_would_add():
    # Where the course is installed, the script has nothing left to install.
    needed = install.missing(install.installed())
    assert needed == [], needed


def test_every_chapter_has_a_colab_link_to_this_repository_and_the_cell_clones_it():
    import tomllib

    repository = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["urls"]
    github = repository["Repository"].removeprefix("https://github.com/")
    readme = (REPO / "README.md").read_text()
    for chapter in sorted(p.parent.name for p in NOTEBOOKS if p.parts[-3] == "notebooks"):
        link = f"colab.research.google.com/github/{github}/blob/main/notebooks/{chapter}/{chapter}"
        assert link in readme, f"README: no Colab link for {chapter}"
    assert f'"https://github.com/{github}"' in FIRST_CELL


def test_colab_install_holds_only_the_core_when_pip_cannot_keep_everything(monkeypatch, capsys):
    have = {"tensorflow": "2.20.0", "numpy": "2.0.2", "absl-py": "2.5.1", "notebook": "6.5.7"}
    calls = []

    def pip_install(requirements, keep):
        calls.append(dict(keep))
        return len(calls) > 1  # the first try, holding everything, fails as tfmot's absl pin would

    monkeypatch.setattr(install, "installed", lambda: have)
    monkeypatch.setattr(install, "pip_install", pip_install)
    install.main()
    assert calls[0] == have
    assert calls[1] == {"tensorflow": "2.20.0", "numpy": "2.0.2", "notebook": "6.5.7"}
    assert "keeping only" in capsys.readouterr().out
