"""Browser tests: the sample checkout in headless Chromium (the system's, driven by
Playwright's sync API) on an ephemeral local stack.

Tests marked ``browser`` need Playwright and a Chromium (``chromium`` or
``chromium-browser`` on PATH, or ``CHROMIUM_PATH``). Without them they are skipped with
a loud warning (a pytest warning and a line at the end of the run), except in CI (the
``CI`` variable set), where they fail: ``.ci/run`` installs Chromium before the tests.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from examples.checkout.smoke import missing_reason

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
REASON = missing_reason()
IN_CI = bool(os.environ.get("CI"))
_skipped: list[str] = []


class BrowserMissingWarning(UserWarning):
    """The browser tests did not run: no Chromium (or no Playwright) here."""


def pytest_runtest_setup(item: pytest.Item) -> None:
    if REASON is None or item.get_closest_marker("browser") is None:
        return
    if IN_CI:
        pytest.fail(f"browser tests cannot run in CI: {REASON}", pytrace=False)
    if not _skipped:
        warnings.warn(BrowserMissingWarning(f"browser tests SKIPPED: {REASON}"), stacklevel=1)
    _skipped.append(item.nodeid)
    pytest.skip(f"no browser: {REASON}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _skipped:
        terminalreporter.write_sep(
            "!",
            f"{len(_skipped)} BROWSER TESTS SKIPPED: {REASON}; the checkout was not tested in a browser",
            red=True,
            bold=True,
        )


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory) -> Iterator[Any]:
    """An ephemeral local stack (its sample checkout included), its log in a file."""
    from devstack.stack import LocalStack, StackConfig

    log_file = tmp_path_factory.mktemp("browser-stack") / "stack.log"
    with LocalStack(StackConfig.ephemeral(echo_logs=False, log_file=log_file)) as stack:
        yield stack


# (the browser itself is the session's one, tests/conftest.py: Playwright's sync API runs
# one driver per thread, which the Microform library's own browser tests share)


@dataclass
class Recorded:
    """A page and everything it did: each request (with the frame that made it) and each
    console message."""

    page: Any
    requests: list[Any] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def main_frame_requests(self) -> list[Any]:
        return [r for r in self.requests if r.frame == self.page.main_frame]

    def urls(self, method: str | None = None) -> list[str]:
        return [r.url for r in self.requests if method is None or r.method == method]


@pytest.fixture
def recorded(browser) -> Iterator[Recorded]:
    context = browser.new_context(viewport={"width": 620, "height": 820}, device_scale_factor=1)
    page = context.new_page()
    record = Recorded(page)
    page.on("request", lambda request: record.requests.append(request))
    page.on("console", lambda message: record.console.append(message.text))
    try:
        yield record
    finally:
        context.close()


def screenshot(page: Any, name: str, tmp_path: Path) -> Path:
    """The page into tmp_path, and into docs/screenshots with UPDATE_SCREENSHOTS=1."""
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (SCREENSHOTS / name).write_bytes(path.read_bytes())
    return path
