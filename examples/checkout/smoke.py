"""Pay on the sample checkout in headless Chromium, as a shopper would: the smoke check
``make demo`` runs, and the browser tests' driver. Needs Playwright's Python package and a
Chromium (Debian's ``chromium``; ``CHROMIUM_PATH`` names another)::

    python -m examples.checkout.smoke --url http://127.0.0.1:8083/

It types a test card into the Microform fields (iframes: the number never enters the
page), chooses the expiry, presses Pay and prints the verified summary the page shows.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

VISA = "4111111111111111"
MASTERCARD = "5555555555554444"
CHROMIUM_NAMES = ("chromium", "chromium-browser")


def find_chromium() -> str | None:
    """``CHROMIUM_PATH`` when set (None when it is not an executable), else the first of
    ``chromium``, ``chromium-browser`` on PATH."""
    explicit = os.environ.get("CHROMIUM_PATH", "").strip()
    if explicit:
        return explicit if os.path.isfile(explicit) and os.access(explicit, os.X_OK) else None
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def missing_reason() -> str | None:
    """Why a headless checkout cannot run here (None: it can)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -c constraints.txt -r requirements-dev.txt)"
    if find_chromium() is None:
        explicit = os.environ.get("CHROMIUM_PATH", "").strip()
        if explicit:
            return f"CHROMIUM_PATH={explicit} is not an executable file"
        return (
            "no Chromium found: neither chromium nor chromium-browser is on PATH and CHROMIUM_PATH is unset "
            "(Debian/Ubuntu: sudo apt-get install chromium)"
        )
    return None


def launch(playwright: Any, executable: str | None = None) -> Any:
    """Headless Chromium from the system (not Playwright's own download)."""
    return playwright.chromium.launch(
        executable_path=executable or find_chromium(), headless=True, args=["--no-sandbox"]
    )


@dataclass
class Checkout:
    """What the page did: the summary in #result (None when nothing came), the messages in
    its error elements, and every request the page and its frames made."""

    result: Any = None
    errors: dict[str, str] = field(default_factory=dict)
    requests: list[Any] = field(default_factory=list)


def page_errors(page: Any) -> dict[str, str]:
    ids = ("checkout-error", "number-error", "securityCode-error", "expiry-error")
    found = {i: page.locator(f"#{i}").text_content() or "" for i in ids}
    return {k: v.strip() for k, v in found.items() if v.strip()}


def wait_for_fields(page: Any, timeout_ms: float = 15_000) -> None:
    """Until the Pay button is enabled (both fields loaded) or the page shows an error."""
    page.wait_for_function(
        "() => !document.getElementById('pay').disabled || !document.getElementById('checkout-error').hidden",
        timeout=timeout_ms,
    )


def expiry_year() -> str:
    """A year the page offers and no card has passed: five years from now."""
    return str(datetime.now(UTC).year + 5)


def fill_card(page: Any, number: str, security_code: str = "123", month: str = "12", year: str | None = None) -> None:
    """Type the card as a shopper does: key by key into the fields' iframes."""
    year = year or expiry_year()
    page.frame_locator("#number-container iframe").locator("input").press_sequentially(number, delay=15)
    page.frame_locator("#securityCode-container iframe").locator("input").press_sequentially(security_code, delay=15)
    page.select_option("#expMonth", month)
    page.select_option("#expYear", year)


def pay(page: Any, timeout_ms: float = 20_000) -> Checkout:
    """Press Pay; wait for #result or an error message; what the page shows."""
    page.click("#pay")
    page.wait_for_function(
        "() => document.getElementById('result').textContent.trim() !== '' || "
        "[...document.querySelectorAll('.error, #checkout-error')].some(e => !e.hidden && e.textContent.trim())",
        timeout=timeout_ms,
    )
    text = (page.locator("#result").text_content() or "").strip()
    return Checkout(result=json.loads(text) if text else None, errors=page_errors(page))


def checkout(url: str, number: str = VISA, *, executable: str | None = None, **card: str) -> Checkout:
    """Open ``url``, pay with ``number``; what the page showed and the requests it made."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright, executable)
        try:
            page = browser.new_page()
            requests: list[Any] = []
            page.on("request", lambda request: requests.append(request))
            page.goto(url)
            wait_for_fields(page)
            if page.locator("#pay").is_disabled():
                return Checkout(errors=page_errors(page), requests=requests)
            fill_card(page, number, **card)
            done = pay(page)
            done.requests = requests
            return done
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.checkout.smoke", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8083/", help="the checkout page")
    parser.add_argument("--card", choices=("visa", "mastercard"), default="visa", help="the test card to pay with")
    args = parser.parse_args(argv)
    reason = missing_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    done = checkout(args.url, VISA if args.card == "visa" else MASTERCARD)
    print(json.dumps({"result": done.result, "errors": done.errors}, indent=2))
    return 0 if isinstance(done.result, dict) and done.result.get("verified") else 1


if __name__ == "__main__":
    sys.exit(main())
