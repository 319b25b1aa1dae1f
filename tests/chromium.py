"""Headless Chromium for the browser tests: Debian's Chromium driven by Playwright (no browser download)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

CHROMIUM = Path(os.environ.get("CLEARML_ASSETS_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.timeout(600),
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"no Chromium at {CHROMIUM}: apt-get install chromium "
                                                      "(what .ci/run does) or set CLEARML_ASSETS_CHROMIUM"),
]
"""A browser test module's ``pytestmark``."""


@contextmanager
def chromium_page(timeout_ms: int, extra_args: tuple[str, ...] = (), **context: Any) -> Iterator[Any]:
    """A page of a fresh headless Chromium, closed on exit.

    Args:
        timeout_ms: The page's default timeout.
        extra_args: Chromium flags beyond ``CHROMIUM_ARGS``.
        **context: Options of the page's browser context (``viewport``, ``accept_downloads``, ...).
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *extra_args])
        try:
            page = browser.new_context(**context).new_page()
            page.set_default_timeout(timeout_ms)
            yield page
        finally:
            browser.close()


def screenshots(folder: str) -> Callable[[Any, str], Path]:
    """``shot(page, name)``: a full-page screenshot as ``test-artifacts/<folder>/<name>.png``."""
    def shot(page: Any, name: str) -> Path:
        path = ARTIFACTS / folder / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path), full_page=True)
        return path

    return shot
