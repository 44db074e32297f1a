"""The lab in a real browser: headless Chromium (Debian's package, driven by Playwright) opens a
chapter as a learner, runs its first cells, presses Validate and reads the result, then opens the
formgrader as an instructor. Screenshots are kept in build/browser/ as CI artifacts.

Installs what it needs on a fresh machine: Debian's chromium with apt (as root); Playwright comes
with requirements-dev.txt (its own browser download is impossible here and not needed).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, apt_install
from playwright.sync_api import Page
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from test_lab import TOKEN, VALIDATED, lab  # noqa: F401 (the fixture: JupyterLab as `make lab`)

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = REPO / "build" / "browser"


def ensure_chromium() -> None:
    """Install Debian's chromium if it is missing (root only), or say how to."""
    if not CHROMIUM.exists() and not apt_install("chromium"):
        pytest.fail(f"no {CHROMIUM}: install Debian's chromium (`sudo apt-get install chromium`)")


@pytest.fixture(scope="module")
def browser():
    ensure_chromium()
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        yield chromium
        chromium.close()


# Two code cells show an execution count ([1], [2], or higher after a retry pressed again).
RAN_TWO = (
    "[...document.querySelectorAll('.jp-InputPrompt')]"
    ".filter(p => /\\[\\d+\\]/.test(p.textContent)).length >= 2"
)


@contextlib.contextmanager
def screenshot_on_failure(page: Page, name: str) -> Iterator[None]:
    """Keep what the browser showed when a step failed (build/browser/failed-NAME.png)."""
    try:
        yield
    except BaseException:
        page.screenshot(path=SHOTS / f"failed-{name}.png")
        raise


def run_first_cells(page: Page, presses: int = 5, attempts: int = 3) -> None:
    """Shift+Enter from the first cell until the second code cell has run ([2]); a loaded machine
    can connect the kernel after the first key presses, which are then lost: press again."""
    for attempt in range(1, attempts + 1):
        page.locator(".jp-NotebookPanel .jp-Cell").first.click()
        # The title, the Colab cell (folded: its prompt is hidden), a lead-in, the parameters and
        # the set-up cell: two visible prompts get numbers.
        for _ in range(presses):
            page.keyboard.press("Shift+Enter")
        try:
            page.wait_for_function(f"() => {RAN_TWO}", timeout=90_000)
            return
        except PlaywrightTimeoutError:
            if attempt == attempts:
                raise


@pytest.mark.slow
def test_learner_runs_first_cells_and_validate_reports_the_failing_tests(lab, browser):  # noqa: F811
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    with screenshot_on_failure(page, "learner"):
        page.goto(f"{lab}/lab/tree/{VALIDATED}/{VALIDATED}.ipynb?token={TOKEN}")
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
        idle = ".jp-Notebook-ExecutionIndicator[data-status='idle']"
        page.wait_for_selector(idle, timeout=120_000)
        run_first_cells(page)
        page.wait_for_selector(idle, timeout=180_000)
        page.screenshot(path=SHOTS / "1-learner-first-cells-run.png")
        assert page.get_by_text("Traceback (most recent call last)").count() == 0

        page.locator(".validate-button").first.click()
        # The dialog opens when nbgrader has executed the whole notebook (in its full mode).
        result = page.wait_for_selector(".jp-Dialog-content", timeout=900_000)
        text = result.inner_text()
        page.screenshot(path=SHOTS / "2-learner-validate-result.png")
        assert "Validation Results" in text, text[:2000]
        assert page.locator(".jp-Dialog-content .validation-failed").count() == 1, text[:2000]
        assert "NotImplementedError" in text, text[:2000]


@pytest.mark.slow
def test_instructor_opens_the_formgrader_and_sees_the_chapters(lab, browser):  # noqa: F811
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{lab}/formgrader?token={TOKEN}")
    page.wait_for_selector("text=Manage Assignments", timeout=120_000)
    page.wait_for_selector(f"text={VALIDATED}", timeout=120_000)
    page.screenshot(path=SHOTS / "3-instructor-formgrader.png")
    assert "06_tuning" in page.content()  # every chapter is listed, not only the one validated
