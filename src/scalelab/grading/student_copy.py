"""What students get when the course is graded for credit: the released notebooks, the library
and the environment files, without solutions/, the gradebook, the tests' correct variants, hidden
tests, or the reference answers to exercises (their functions stay, raising NotImplementedError).

The open course keeps the reference answers (later cells fall back to them when an exercise is
missing); here a learner must solve an exercise to run the cells that build on it.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from pathlib import Path

# Copied as they are (if present); everything else stays with the instructor.
SHIPPED = [
    "notebooks", "src", "docs", "compose", "k8s", "README.md", "Dockerfile", ".dockerignore",
    "docker-compose.yml", "environment.yml", "requirements.txt", "pyproject.toml", "Makefile",
    "colab", "binder",
    "nbgrader_config.py", "grader/nbgrader_config.py",
]  # fmt: skip
LEFT_OUT = ("solutions", "tests", "grader (gradebook, submissions, reports)", ".git", ".ci")
IGNORED = shutil.ignore_patterns(
    "__pycache__", "*.pyc", ".ipynb_checkpoints", "*.egg-info", "models", "exports", "tuning",
    "results.json", ".tmp",
)  # fmt: skip
STUB = '    raise NotImplementedError("{name} is an exercise: its reference answer is not in the student copy")\n'  # noqa: E501


def exercise_names(solution: Path) -> set[str]:
    """Names of the functions students write in `solution`'s exercise cells; for a cell that
    writes a file (`%%writefile locustfile.py`), its reference's name (`write_locustfile`)."""
    names = set()
    for cell in json.loads(solution.read_text())["cells"]:
        if cell["cell_type"] == "code" and cell["metadata"].get("nbgrader", {}).get("solution"):
            written = re.match(r"%%writefile\s+(?:-a\s+)?(\S+)", "".join(cell["source"]))
            if written:
                names.add(f"write_{Path(written[1]).stem}")
                continue
            source = re.sub(r"^[%!].*$", "", "".join(cell["source"]), flags=re.M)
            tree = ast.parse(source)
            names |= {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    return names


def without_answers(module: str, names: set[str]) -> str:
    """`module`'s source with the bodies of the functions in `names` replaced by a stub."""
    lines = module.splitlines(keepends=True)
    tree = ast.parse(module)
    cuts = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in names:
            first = node.body[0]
            has_doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            start = (first.end_lineno or first.lineno) if has_doc else first.lineno - 1
            cuts.append((start, node.end_lineno or start, node.name))
    for start, end, name in sorted(cuts, reverse=True):
        lines[start:end] = [STUB.format(name=name)]
    return "".join(lines)


def student_copy(root: Path, destination: Path) -> Path:
    """Write what students get to `destination` (which must not exist yet) and return it."""
    if destination.exists():
        raise FileExistsError(f"{destination} exists: give a new folder for the student copy.")
    for name in SHIPPED:
        source = root / name
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=IGNORED)
        elif source.is_file():
            shutil.copy2(source, target)
    for module in sorted((destination / "src" / "scalelab" / "answers").glob("ch[0-9][0-9].py")):
        chapter = next((root / "solutions").glob(f"{module.stem[2:]}_*/*.ipynb"), None)
        if chapter is not None:
            module.write_text(without_answers(module.read_text(), exercise_names(chapter)))
    return destination


def build_image(destination: Path, tag: str) -> None:
    """`docker build` the student copy's Dockerfile as `tag` (needs an engine and PyPI)."""
    subprocess.run(["docker", "build", "-t", tag, str(destination)], check=True)
