"""`scalelab grading student-copy`: what students get holds no answer, no hidden test."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scalelab import grading
from scalelab.grading import student_copy

REPO = Path(__file__).resolve().parents[2]


def regions(text: str, begin: str, end: str) -> list[str]:
    """The text between each pair of markers (nbgrader's solution or hidden-test delimiters)."""
    return re.findall(rf"{begin}\n(.*?)\n[ \t]*[#]* ?{end}", text, flags=re.S)


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    destination = tmp_path_factory.mktemp("students") / "scalelab"
    done = subprocess.run(
        [sys.executable, "-m", "scalelab", "grading", "student-copy", str(destination)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return destination


def texts(root: Path) -> dict[str, str]:
    """Every file's text (a notebook's cell sources), each line stripped, blank lines dropped."""
    found = {}
    for path in root.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="ignore")
            if path.suffix == ".ipynb":
                text = "\n".join("".join(c["source"]) for c in json.loads(text)["cells"])
            found[str(path.relative_to(root))] = text
    return found


def normalized(text: str) -> str:
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def test_student_copy_has_notebooks_library_and_environment_but_no_solutions_tests_or_gradebook(
    copy,
):
    for shipped in ("notebooks", "src/scalelab", "requirements.txt", "Dockerfile", "README.md"):
        assert (copy / shipped).exists(), shipped
    for chapter in grading.chapters(REPO):
        assert (copy / "notebooks" / chapter / f"{chapter}.ipynb").is_file()
    for left_out in ("solutions", "tests", ".git", "grader/gradebook.db", "grader/submitted"):
        assert not (copy / left_out).exists(), left_out


def test_student_copy_holds_no_solution_code_and_no_hidden_test(copy):
    everything = texts(copy)
    for path, text in everything.items():
        if path.endswith(".ipynb"):  # docs and grading.py name the markers; no notebook may
            for marker in grading.SOLUTION_MARKERS:
                assert marker not in text, (path, marker)
    flat = {
        path: "\n".join(line for line in normalized(text).splitlines() if line[0] != "#")
        for path, text in everything.items()
    }
    for solution in sorted((REPO / "solutions").glob("*/*.ipynb")):
        for cell in json.loads(solution.read_text())["cells"]:
            source = "".join(cell["source"])
            hidden = regions(source, "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
            answers = regions(source, "### BEGIN SOLUTION", "### END SOLUTION")
            for region in hidden + answers:
                # A whole solution or hidden test (a single line if it is long enough to be
                # telling): shorter pieces, like `return x`, occur anywhere.
                lines = [line for line in normalized(region).splitlines() if line[0] != "#"]
                if len(lines) < 2 and (not lines or len(lines[0]) < 40):
                    continue
                wanted = "\n".join(lines)
                where = [path for path, text in flat.items() if wanted in text]
                assert not where, f"{solution.name}: {wanted!r} is in {where}"


def test_reference_answers_are_stubs_that_say_so(copy):
    answers = copy / "src" / "scalelab" / "answers"
    for module in sorted(answers.glob("ch[0-9][0-9].py")):
        chapter = next((REPO / "solutions").glob(f"{module.stem[2:]}_*/*.ipynb"))
        names = student_copy.exercise_names(chapter)
        assert names, module
        source = module.read_text()
        for name in names:
            if f"def {name}(" in source:
                body = source.split(f"def {name}(", 1)[1].split("\ndef ", 1)[0]
                assert "is an exercise: its reference answer is not in the student copy" in body
    check = "import scalelab.answers.ch01 as a; a.describe_signature('x')"
    done = subprocess.run(
        [sys.executable, "-c", check], cwd=copy, capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(copy / "src"), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert "NotImplementedError: describe_signature is an exercise" in done.stderr, done.stderr
