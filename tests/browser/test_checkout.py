"""The sample checkout in headless Chromium on the local stack: the page a shopper sees,
the Microform fields (iframes of the emulator's Flex origin), the shop server, the API's
capture context and transient-token verification, end to end.

- Visa and Mastercard test cards are tokenized in the field iframes and verified by the
  shop through ``POST /transient-tokens/verify``; the page shows the summary.
- An invalid number shows the field's error and makes no token.
- A page on an origin outside the capture context's ``targetOrigins`` is refused.
- The card number is in no request the page makes (every frame's, plain bytes; the page's
  own in every encoding), nowhere in its DOM or console, and in no line of the stack's log.
"""

from __future__ import annotations

import base64
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from decline_rescue.domain.carddata import find_pans
from examples.checkout.smoke import MASTERCARD, VISA, expiry_year, fill_card, pay, wait_for_fields
from tests.browser.conftest import screenshot

pytestmark = pytest.mark.browser
STATIC = Path(__file__).resolve().parents[2] / "examples" / "checkout" / "static"
INVALID = "4111111111111112"  # Visa's test number with the last digit off: fails Luhn


def number_forms(number: str) -> list[bytes]:
    """The number as it could travel: plain, grouped by spaces or dashes, URL-encoded, as
    hex, and base64/base64url at each of the three alignments it can have in a longer text."""
    groups = [number[i : i + 4] for i in range(0, len(number), 4)]
    texts = {number, " ".join(groups), "-".join(groups)}
    texts |= {urllib.parse.quote(t) for t in texts} | {urllib.parse.quote_plus(t) for t in texts}
    forms = {t.encode() for t in texts} | {number.encode().hex().encode()}
    raw = number.encode()
    for pad in range(3):
        start = -(-pad // 3) * 4  # the first base64 quantum made of the number's bytes only
        end = (pad + len(raw)) // 3 * 4
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            forms.add(encode(b"\0" * pad + raw)[start:end])
    return sorted(forms)


def leaks(number: str, data: bytes | str | None) -> list[bytes]:
    if not data:
        return []
    blob = data.encode() if isinstance(data, str) else data
    return [form for form in number_forms(number) if form in blob]


def open_checkout(recorded, url: str) -> None:
    recorded.page.goto(url)
    wait_for_fields(recorded.page)
    assert recorded.page.locator("#checkout-error").is_hidden(), recorded.page.locator("#checkout-error").text_content()
    assert recorded.page.locator("#pay").is_enabled()


@pytest.mark.parametrize(
    ("number", "brand", "card_type", "branded"),
    [(VISA, "VISA", "001", "Visa"), (MASTERCARD, "MASTERCARD", "002", "Mastercard")],
    ids=["visa", "mastercard"],
)
def test_a_test_card_is_tokenized_and_verified(local_stack, recorded, tmp_path, number, brand, card_type, branded):
    # Given the checkout page, its fields loaded
    page = recorded.page
    open_checkout(recorded, local_stack.checkout_url + "/")
    if brand == "VISA":
        screenshot(page, "checkout-empty.png", tmp_path)

    # When the shopper types the card, chooses the expiry and pays
    fill_card(page, number, "123", "12", expiry_year())
    page.wait_for_function("() => document.getElementById('card-brand').textContent.trim() !== ''")
    if brand == "VISA":
        screenshot(page, "checkout-filled.png", tmp_path)
    done = pay(page)

    # Then the shop verified the token and the page shows the summary
    assert done.errors == {}
    card = done.result["card"]
    assert done.result["verified"] is True
    assert card["maskedNumber"] == "X" * 12 + number[-4:]
    assert card["bin"] == number[:6]
    assert (card["brand"], card["type"]) == (brand, card_type)
    assert (card["expirationMonth"], card["expirationYear"]) == ("12", expiry_year())
    assert page.locator("#card-brand").text_content() == branded
    assert page.locator("#pay").is_disabled()  # one payment per page
    if brand == "VISA":
        screenshot(page, "checkout-verified.png", tmp_path)
    # one token made in the number's iframe at the Flex origin, one POST /pay by the page
    tokens = [r for r in recorded.requests if r.method == "POST" and r.url.endswith("/flex/v2/tokens")]
    assert len(tokens) == 1 and tokens[0].frame != page.main_frame
    assert tokens[0].url.startswith(local_stack.cybersource_flex_url + "/")
    posts = [r for r in recorded.main_frame_requests() if r.method == "POST"]
    assert [r.url for r in posts] == [local_stack.checkout_url + "/pay"]
    assert set(json.loads(posts[0].post_data)) == {"sessionId", "transientToken"}


def test_an_invalid_number_shows_the_field_error_and_makes_no_token(local_stack, recorded):
    # Given the checkout page
    page = recorded.page
    open_checkout(recorded, local_stack.checkout_url + "/")

    # When the shopper types a number that fails the check digit and presses Pay
    fill_card(page, INVALID, "123", "12", expiry_year())
    page.click("#pay")
    page.wait_for_function("() => document.getElementById('number-error').textContent.trim() !== ''")

    # Then the number field says so, nothing was tokenized and nothing sent to the shop
    assert "valid card number" in page.locator("#number-error").text_content()
    assert page.locator("#result").text_content() == ""
    page.wait_for_timeout(500)
    assert not [u for u in recorded.urls("POST") if u.endswith("/flex/v2/tokens") or u.endswith("/pay")]


def test_an_empty_form_names_every_missing_field(local_stack, recorded):
    page = recorded.page
    open_checkout(recorded, local_stack.checkout_url + "/")

    page.click("#pay")

    assert page.locator("#number-error").text_content() == "Enter the card number."
    assert page.locator("#securityCode-error").text_content() == "Enter the security code."
    assert page.locator("#expiry-error").text_content() == "Choose the expiry month and year."
    assert recorded.urls("POST") == []


class _Mirror(BaseHTTPRequestHandler):
    """The shop's page, as rendered for the shop's origin, served from another origin."""

    html = b""

    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if path == "/":
            body, kind = self.html, "text/html; charset=utf-8"
        elif path in ("/static/checkout.js", "/static/checkout.css"):
            body = (STATIC / path.rsplit("/", 1)[1]).read_bytes()
            kind = "text/javascript" if path.endswith(".js") else "text/css"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def foreign_origin(local_stack):
    """A server on another origin (another port) serving the checkout page whose capture
    context the shop got for its own origin."""
    handler = type("Mirror", (_Mirror,), {"html": httpx.get(local_stack.checkout_url + "/", timeout=30).content})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_page_on_an_origin_outside_target_origins_is_refused(local_stack, recorded, foreign_origin):
    # Given the shop's page, with its capture context, served from another origin
    page = recorded.page

    # When a shopper opens it there
    page.goto(foreign_origin + "/")
    wait_for_fields(page)

    # Then the library refuses the context: the page says so, no field, no token
    message = page.locator("#checkout-error").text_content()
    assert "CAPTURE_CONTEXT_INVALID" in message and "targetOrigins" in message, message
    assert page.locator("#pay").is_disabled()
    assert page.locator("#number-container iframe").count() == 0

    # And the Flex origin will not let that page frame a field anyway (CSP frame-ancestors)
    context = json.loads(page.locator("#checkout-config").text_content())["captureContext"]
    claims = json.loads(base64.urlsafe_b64decode(context.split(".")[1] + "=="))
    mf_origin = claims["ctx"][0]["data"]["mfOrigin"].rstrip("/")
    src = f"{mf_origin}/microform/bundle/v2.0/iframe.html?kid={claims['flx']['jwk']['kid']}&field=number"
    with page.expect_response(lambda r: "iframe.html" in r.url) as answer:
        page.evaluate(
            "src => { const f = document.createElement('iframe'); f.id = 'probe'; f.src = src;"
            " document.body.appendChild(f); }",
            src,
        )
    csp = answer.value.headers.get("content-security-policy", "")
    assert "frame-ancestors" in csp and foreign_origin not in csp and local_stack.checkout_url in csp
    page.wait_for_timeout(1000)
    assert page.frame_locator("#probe").locator("#mf-input").count() == 0
    assert not [u for u in recorded.urls("POST") if u.endswith("/flex/v2/tokens") or u.endswith("/pay")]


def test_the_checkout_opened_on_localhost_gets_a_context_for_localhost(local_stack, recorded):
    # the stack's CheckoutOrigins lists both of the checkout's origins
    url = local_stack.checkout_url.replace("127.0.0.1", "localhost")
    open_checkout(recorded, url + "/")
    context = json.loads(recorded.page.locator("#checkout-config").text_content())["captureContext"]
    claims = json.loads(base64.urlsafe_b64decode(context.split(".")[1] + "=="))
    assert claims["ctx"][0]["data"]["targetOrigins"] == [url]


def test_the_card_number_is_in_no_request_no_page_and_no_log_line(local_stack, recorded):
    # Given a payment with each test card, every request recorded
    page = recorded.page
    for number in (VISA, MASTERCARD):
        open_checkout(recorded, local_stack.checkout_url + "/")
        fill_card(page, number, "123", "12", expiry_year())
        assert pay(page).result["verified"] is True

        # Then no request carries it in any form (URL, headers, body): the page's own, and
        # every frame's, the field iframes' included (the token request's body is a JWE)
        main = recorded.main_frame_requests()
        assert main and len(main) < len(recorded.requests)
        for request in recorded.requests:
            for part in (request.url, json.dumps(request.all_headers()), request.post_data_buffer):
                assert leaks(number, part) == [], f"{request.method} {request.url}"
                text = part.decode("latin-1") if isinstance(part, bytes) else part or ""
                assert number not in find_pans(text), f"{request.method} {request.url}"
        # nor the page's DOM or its console
        assert leaks(number, page.content()) == []
        assert leaks(number, "\n".join(recorded.console)) == []
    assert len(recorded.urls("POST")) == 4  # two tokens, two payments

    # And no line the stack logged (every process: gateway, functions, emulators, the shop)
    log = Path(local_stack.config.log_file).read_text(encoding="utf-8")
    assert "[checkout]" in log and "transient token verified: HTTP 200" in log
    for number in (VISA, MASTERCARD, INVALID):
        assert leaks(number, log) == []
    assert not {VISA, MASTERCARD} & set(find_pans(log))
