"""A real browser for the console's tests: Debian's chromium driven by Playwright for Python.

Playwright rather than Selenium: one Python package, no driver binary to match with the browser
(it speaks the DevTools protocol to the chromium it is given with ``executable_path``), and waits
on page conditions (``wait_for_function``) instead of sleeps. No browser is ever downloaded: the
tests use ``/usr/bin/chromium`` (``scripts/services.sh`` installs it) and are skipped, with the
reason, only when it is absent. Each test gets a new context (fresh storage: a new login).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.bench.console import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(scope="session")
def chromium_path() -> str:
    found = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if not found:
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (scripts/services.sh does)")
    return found


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tests' screenshots go (printed, kept by pytest's tmp retention)."""
    return tmp_path_factory.mktemp("console-shots")
