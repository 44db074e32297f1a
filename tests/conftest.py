"""Shared fixtures, and a summary of what the slow tests executed and scored."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHAPTERS = sorted(p.name for p in (REPO / "solutions").glob("[0-9][0-9]_*") if p.is_dir())


# Seconds each chapter's solution run (with its variants) took in CI (-n 3 on 2 cores), and its
# round trip (solution and untouched autograded, demonstrations passed over).
CHAPTER_SECONDS = {
    "05_distribution": 340,
    "02_tf_serving": 245,
    "04_tflite": 215,
    "06_tuning": 170,
    "03_rest_vs_grpc": 100,
    "01_savedmodel": 80,
}
ROUNDTRIP_SECONDS = {
    "04_tflite": 104,
    "05_distribution": 97,
    "02_tf_serving": 96,
    "03_rest_vs_grpc": 53,
    "06_tuning": 45,
    "01_savedmodel": 35,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Notebook runs first, the longest first, then the other slow tests: under xdist's
    worksteal the long runs start at once and the short tests fill in around them."""

    def order(item: pytest.Item) -> tuple[bool, float]:
        callspec = getattr(item, "callspec", None)
        chapter = callspec.params.get("chapter", "") if callspec else ""
        table = ROUNDTRIP_SECONDS if "roundtrip" in item.name else CHAPTER_SECONDS
        seconds = table.get(chapter, 0)
        return (item.get_closest_marker("slow") is None, -seconds)

    items.sort(key=order)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    """Print what each slow test reported (notebooks run, round-trip scores), also under xdist."""
    # A test with subtests reports once per subtest, each carrying the test's properties.
    calls = [
        report
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "call"
    ]
    lines = sorted(
        {str(value) for r in calls for name, value in r.user_properties if name == "summary"}
    )
    executed = len(
        {r.nodeid for r in calls for name, _ in r.user_properties if name == "executed_notebook"}
    )
    if lines:
        terminalreporter.section("scalelab: notebooks executed and grading round trips")
        for line in lines:
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"{executed} solution notebook(s) executed with papermill")
