"""The one command line: every command is a subcommand of `scalelab`, and nothing imports it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from scalelab import cli

SRC = Path(__file__).resolve().parents[1] / "src" / "scalelab"


def run(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "scalelab", *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_command_line_has_serving_cluster_grading_and_bench_commands():
    shown = run("--help")
    for command in ("serve", "cluster", "grading", "bench"):
        assert command in shown
    assert {"train", "tune"} <= set(re.findall(r"\b(train|tune)\b", run("cluster", "--help")))


def test_every_benchmark_runs_from_bench_by_name():
    shown = run("bench", "--help")
    assert list(cli.BENCHMARKS) == [
        "rest-vs-grpc", "tflite", "strategies", "tuning", "grading", "memory"
    ]  # fmt: skip
    assert all(name in shown for name in cli.BENCHMARKS)


def test_bench_counts_below_one_are_refused_saying_what_to_give():
    done = subprocess.run(
        [sys.executable, "-m", "scalelab", "bench", "grading", "--rounds", "0"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--rounds: give a whole number of 1 or more, not '0'" in done.stderr, done.stderr


def test_serve_hands_tf_serving_flags_to_the_stand_in():
    assert "scalelab local stand-in" in run("serve", "--version")


def test_no_module_of_the_library_imports_the_command_line():
    importers = [
        path.relative_to(SRC).as_posix()
        for path in SRC.rglob("*.py")
        if re.search(r"^\s*(from scalelab\.cli |from scalelab import cli|import scalelab\.cli)",
                     path.read_text(), re.M)
    ]  # fmt: skip
    assert importers == ["__main__.py"]
