"""``make demo``: decline-rescue's main job on the local stack, as a person would see it.

Starts the local stack (moto, the Cybersource emulator, the API gateway and a runtime
per function), asks for capture contexts through the API, acts as the card-entry client
(a merchant server or native app: encrypts test cards to the context's one-time key,
POSTs them to the Flex origin's token endpoint named by ``flx.origin``, validates the
transient tokens; web pages use Microform Integration v2 instead), pays on the sample
checkout page (examples/checkout) in headless Chromium when one is installed (the step is
reported as skipped, with why, when not), checks that no card number reached any log,
prints each step's result and time, stops the stack, and exits non-zero if any step
failed.
"""

from __future__ import annotations

import copy
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from decline_rescue.domain.carddata import find_pans
from devstack import card_entry, samples
from devstack.stack import LocalStack, StackConfig
from devstack.template import ROOT

CARDS = {
    "Visa": "4111111111111111",
    "Mastercard": "5555555555554444",
    "Amex": "372425119311008",
}


@dataclass
class Step:
    name: str
    ok: bool
    detail: str
    ms: float
    # a step that could not run here (say, no browser): reported, not counted
    skipped: bool = False


class Demo:
    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.steps: list[Step] = []
        # a merchant's back office: the API key and, with ApiAuth=IAM, SigV4 as the
        # operations principal (capture, cancel and refund are money movement)
        self.http = stack.client("operations")
        self.headers: dict[str, str] = {}

    def step(self, name: str, action: Callable[[], tuple[bool, str]]) -> bool:
        started = time.perf_counter()
        try:
            ok, detail = action()
        except Exception as exc:  # noqa: BLE001 - a failed step is reported, not raised
            ok, detail = False, f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        ms = (time.perf_counter() - started) * 1000
        self.steps.append(Step(name, ok, detail, ms))
        print(f"  {'ok  ' if ok else 'FAIL'} {name:<58} {ms:8.1f} ms  {detail}", flush=True)
        return ok

    def skip(self, name: str, why: str) -> None:
        self.steps.append(Step(name, True, why, 0.0, skipped=True))
        print(f"  skip {name:<58} {'':>11}  {why}", flush=True)

    # -- the steps ------------------------------------------------------------------

    def capture_context(self, body: Any = None) -> httpx.Response:
        return self.http.post("/capture-contexts", json=body, headers=self.headers)

    def run(self) -> None:
        contexts: dict[str, dict[str, Any]] = {}

        def no_key() -> tuple[bool, str]:
            response = httpx.post(self.stack.gateway_url + "/capture-contexts")  # no key, no signature
            return response.status_code == 403, f"HTTP {response.status_code} {response.json().get('message')}"

        def default_context() -> tuple[bool, str]:
            response = self.capture_context()
            body = response.json()
            contexts["default"] = body
            return response.status_code == 201, (
                f"HTTP {response.status_code}, key {body.get('keyId', '')[:10]}..., "
                f"expires {body.get('expiresAt')}, requires {body.get('requiredFields')}"
            )

        def custom_context() -> tuple[bool, str]:
            fields = {
                "paymentInformation": {
                    "card": {"number": {}, "securityCode": {}, "expirationMonth": {}, "expirationYear": {}}
                },
                "orderInformation": {"billTo": {"postalCode": {"required": False}}},
            }
            response = self.capture_context({"fields": fields})
            body = response.json()
            contexts["custom"] = body
            return response.status_code == 201, (
                f"HTTP {response.status_code}, {len(body.get('requiredFields', []))} required, "
                f"{len(body.get('optionalFields', []))} optional"
            )

        def bad_field() -> tuple[bool, str]:
            response = self.capture_context({"fields": {"paymentInformation": {"card": {"pin": {}}}}})
            detail = response.json()["error"]["details"][0]
            return response.status_code == 400 and detail["field"].endswith("card.pin"), (
                f"HTTP {response.status_code} {detail['field']}: {detail['rule']}"
            )

        def tokenize(context: str, card: str, alg: str, framing: str, extra: dict[str, Any]) -> tuple[bool, str]:
            capture_context = contexts[context]["captureContext"]
            data = {"paymentInformation": {"card": {"number": CARDS[card], **extra}}}
            jwe_token = card_entry.encrypt_card(capture_context, data, alg=alg, flat=framing == "json")
            answer = card_entry.post_token(capture_context, jwe_token, framing=framing)
            if answer.status != 201:
                return False, f"HTTP {answer.status} {answer.error_reason()}"
            claims = card_entry.verify_transient_token(capture_context, answer.body)
            number = claims["content"]["paymentInformation"]["card"]["number"]
            card_type = claims["content"]["paymentInformation"]["card"].get("type", {}).get("value")
            ok = answer.digest_ok and number["maskedValue"].endswith(CARDS[card][-4:]) and len(claims["jti"]) == 64
            return ok, f"token {claims['jti'][:8]}..., {number['maskedValue']} bin {number['bin']} type {card_type}"

        def missing_required() -> tuple[bool, str]:
            capture_context = contexts["custom"]["captureContext"]
            data = {"paymentInformation": {"card": {"number": CARDS["Visa"]}}}
            answer = card_entry.post_token(capture_context, card_entry.encrypt_card(capture_context, data))
            return answer.status == 400, f"HTTP {answer.status} {answer.error_reason()} (no CVV/expiry sent)"

        def flex_origin() -> tuple[bool, str]:
            capture_context = contexts["default"]["captureContext"]
            url = card_entry.token_url(capture_context)
            rest = self.stack.cybersource_url
            on_rest = httpx.post(rest + "/flex/v2/tokens", content=b"x", headers={"Content-Type": "application/jwt"})
            ok = not url.startswith(rest + "/") and on_rest.status_code == 404
            return ok, f"tokens at {url}; the REST host {rest} answers HTTP {on_rest.status_code}"

        mode = self.stack.api_auth
        how = "SigV4 (the operations principal) + x-api-key" if mode == "IAM" else "x-api-key"
        print(f"\nmerchant authentication: ApiAuth={mode}: the demo signs with {how}")
        if mode == "IAM":

            def checkout_may_not_capture() -> tuple[bool, str]:
                # the checkout principal's policy allows declines and reads, not money movement
                with self.stack.client("checkout") as checkout:
                    read = checkout.post("/capture-contexts")
                    capture = checkout.post("/orders/any-order/capture", json={})
                ok = read.status_code == 201 and capture.status_code == 403
                return ok, f"capture context HTTP {read.status_code}; capture HTTP {capture.status_code}"

            self.step("the checkout principal may not capture (403), the operations one may", checkout_may_not_capture)

        print("\ncapture contexts through the API gateway:")
        self.step("no API key and no signature is refused", no_key)
        self.step("capture context, default fields", default_context)
        self.step("capture context, card + billing postal code", custom_context)
        self.step("unknown field is refused, naming it", bad_field)
        if "default" in contexts and "custom" in contexts:
            print(
                "\nthe card-entry client (a merchant server or native app): encrypt a test card, "
                "tokenize at flx.origin, validate the transient token:"
            )
            self.step("the token endpoint is flx.origin (Flex), not the REST host", flex_origin)
            self.step(
                "Visa, RSA-OAEP, application/jwt",
                lambda: tokenize("default", "Visa", "RSA-OAEP", "jwt", {"securityCode": "123"}),
            )
            self.step(
                'Mastercard, RSA-OAEP-256, {"keyId": ...} framing',
                lambda: tokenize(
                    "default", "Mastercard", "RSA-OAEP-256", "json", {"expirationMonth": "12", "expirationYear": "2031"}
                ),
            )
            self.step(
                "Amex with CVV and expiry, card+billing context",
                lambda: tokenize(
                    "custom",
                    "Amex",
                    "RSA-OAEP",
                    "jwt",
                    {"securityCode": "1234", "expirationMonth": "01", "expirationYear": "2030"},
                ),
            )
            self.step("required fields missing are refused", missing_required)
        self.run_browser_checkout()
        self.run_declines()
        self.run_lifecycle()
        self.check_events()

    # -- the sample checkout in a browser --------------------------------------------

    def run_browser_checkout(self) -> None:
        """A shopper on the sample checkout (examples/checkout) in headless Chromium: the page
        gets a Microform capture context from the shop's server, the card is typed into the
        fields' iframes and tokenized there, and the shop verifies the token through the API."""
        from examples.checkout import smoke

        url = self.stack.checkout_url
        print(f"\nthe sample checkout in a browser (headless Chromium, {url or 'not served'}/):")
        name = "Visa typed into the Microform fields, paid, verified by the shop"
        if url is None:
            self.skip(name, "Cybersource is not emulated, so the stack serves no sample checkout")
            return
        reason = smoke.missing_reason()
        if reason:
            self.skip(name, reason)
            return

        def browser_checkout() -> tuple[bool, str]:
            done = smoke.checkout(url + "/", smoke.VISA)
            result = done.result if isinstance(done.result, dict) else {}
            card = result.get("card") or {}
            posts = [r.url for r in done.requests if r.method == "POST"]
            page_posts = [u.removeprefix(url) for u in posts if u.startswith(url)]
            ok = (
                result.get("verified") is True
                and card.get("maskedNumber") == "X" * 12 + smoke.VISA[-4:]
                and card.get("brand") == "VISA"
                and not done.errors
                and page_posts == ["/pay"]
            )
            if not ok:
                return False, f"page errors {done.errors or '-'}; result {result or '-'}"
            return True, (
                f"{card['brand']} {card['maskedNumber']} {card.get('expirationMonth')}/{card.get('expirationYear')}; "
                f"the page sent the shop only the token (POST {', '.join(page_posts)})"
            )

        self.step(name, browser_checkout)

    # -- declines -------------------------------------------------------------------

    def decline(self, body: dict[str, Any]) -> httpx.Response:
        return self.http.post("/declines", json=body, headers=self.headers)

    def run_declines(self) -> None:
        print("\ndeclines through the API gateway (FlexFactor emulator):")

        def expect(body: dict[str, Any], status: str, code: int = 200) -> tuple[bool, str]:
            response = self.decline(body)
            answer = response.json()
            got = answer.get("status") or answer.get("error", {}).get("code")
            extra = answer.get("reason", {}).get("rule") or answer.get("orderSessionKey", "")[:8]
            return response.status_code == code and got == status, f"HTTP {response.status_code} {got} {extra}"

        visa = {"last4": "1111", "bin6": "411111", "brand": "VISA"}
        approved = samples.decline()
        self.step("CIT rescued: APPROVED", lambda: expect(approved, "APPROVED"))
        self.step("CIT needs the shopper: CHALLENGE", lambda: expect(samples.decline(**visa), "CHALLENGE"))

        def no_phone() -> dict[str, Any]:
            body = samples.decline(**visa)
            body["payer"].pop("phone", None)
            return body

        self.step("CIT not rescued by FlexFactor: DECLINED", lambda: expect(no_phone(), "DECLINED"))
        self.step(
            "CIT authorization: CAPTUREREQUIRED",
            lambda: expect(samples.decline(transactionType="AUTHORIZATION"), "CAPTUREREQUIRED"),
        )

        def never_retry() -> tuple[bool, str]:
            body = samples.decline()
            body["transaction"]["responseCode"] = "14"
            return expect(body, "NOT_SUBMITTED")

        self.step("never-retry code 14: NOT_SUBMITTED, no provider call", never_retry)

        def duplicate() -> tuple[bool, str]:
            first = self.decline(approved).json()
            again = self.decline(approved).json()
            calls = httpx.get(self.stack.flexfactor_url + "/__emulator/stats").json()["evaluations"]
            n = calls.get(approved["idempotencyKey"], 0)
            return again == first and n == 1, f"same answer, provider evaluations for the key: {n}"

        self.step("duplicate submission answered from the first", duplicate)

        def reused_key() -> tuple[bool, str]:
            other = copy.deepcopy(approved)
            other["transaction"]["amount"] += 100
            return expect(other, "IDEMPOTENCY_KEY_REUSED", 409)

        self.step("same idempotencyKey, other payload: 409", reused_key)

        def card_number() -> tuple[bool, str]:
            body = samples.decline()
            body["paymentMethod"].update(cardNumber=CARDS["Visa"], token=False)
            response = self.decline(body)
            field = response.json()["error"]["details"][0]["field"]
            return response.status_code == 400 and field == "paymentMethod.cardNumber", f"HTTP 400 {field}"

        self.step("a card number instead of a token: 400", card_number)

        def mit_queued() -> tuple[bool, str]:
            body = samples.decline(mit=True, last4="0007")
            response = self.decline(body)
            if response.status_code != 202:
                return False, f"HTTP {response.status_code} {response.text[:80]}"
            started = time.perf_counter()
            status = "QUEUED"
            while time.perf_counter() - started < 15:
                order = self.http.get(f"/orders/{body['orderId']}", headers=self.headers).json()
                status = order.get("status")
                if status != "QUEUED":
                    break
                time.sleep(0.1)
            waited = (time.perf_counter() - started) * 1000
            history = " -> ".join(h["status"] for h in order.get("history", []))
            return status == "SUBMITTED", f"202 QUEUED, then {history} ({waited:.0f} ms via the declines queue)"

        self.step("MIT queued, then submitted from the queue", mit_queued)

        def like_the_ruby_gateway() -> tuple[bool, str]:
            # what a real client sent and FlexFactor's sandbox accepted (tests/fixtures/real/):
            # no timestampUtc (a "timestamp" instead), no customerIp, no isMIT, PascalCase keys
            body = samples.decline(**visa)
            stamp = body["transaction"].pop("timestampUtc")
            body["transaction"]["timestamp"] = stamp
            body["transaction"]["timezoneUtcOffset"] = "-5"
            body.pop("customerIp", None)
            body.pop("isMIT", None)
            pm = body.pop("paymentMethod")
            body["PaymentMethod"] = {k[:1].upper() + k[1:]: v for k, v in pm.items()}
            response = self.decline(body)
            answer = response.json()
            warned = sorted(w["field"] for w in answer.get("warnings", []))
            ok = response.status_code == 200 and answer.get("status") == "CHALLENGE" and "customerIp" in warned
            return ok, f"HTTP {response.status_code} {answer.get('status')}; warnings: {', '.join(warned)}"

        self.step("real client traffic accepted, what the seed wants as warnings", like_the_ruby_gateway)

        def refunds() -> tuple[bool, str]:
            order_id = approved["orderId"]
            url = f"/orders/{order_id}/refund"
            part = self.http.post(url, json={"amount": 500, "reason": "one item returned"}, headers=self.headers)
            again = self.http.post(url, json={"amount": 500, "reason": "one item returned"}, headers=self.headers)
            too_much = self.http.post(url, json={"amount": 5000}, headers=self.headers)
            rest = self.http.post(url, json={}, headers=self.headers)
            codes = (part.status_code, again.status_code, too_much.status_code, rest.status_code)
            total = rest.json().get("refundedAmount")
            ok = (
                codes == (200, 200, 409, 200)
                and again.json().get("replayed") is True
                and too_much.json()["error"]["code"] == "REFUND_EXCEEDS_REMAINING"
                and total == approved["transaction"]["amount"]
            )
            return ok, f"500, the same again (replayed), 5000 (409), the rest: HTTP {codes}; refunded {total}"

        self.step("refunds: partial, repeated, over the rest (409), the rest", refunds)

    # -- lifecycle ------------------------------------------------------------------

    LIFECYCLE = (
        # (name, decline overrides, merchant action, FlexFactor's true end)
        ("MIT, FlexFactor completes it", {"mit": True, "last4": "0007"}, None, "APPROVED"),
        ("MIT, FlexFactor completes it (2)", {"mit": True, "last4": "0008"}, None, "APPROVED"),
        ("MIT, FlexFactor cancels it", {"mit": True, "last4": "0069"}, None, "CANCELLED"),
        ("MIT, expires unrescued", {"mit": True, "last4": "0077", "expires_in": 6}, None, "EXPIRED"),
        ("MIT, approved at once", {"mit": True, "last4": "3184"}, None, "APPROVED"),
        ("MIT, merchant cancels it", {"mit": True, "last4": "0077", "expires_in": 120}, "cancel", "CANCELLED"),
        ("CIT, challenge passed", {"last4": "0259"}, None, "APPROVED"),
        ("CIT, challenge failed", {"last4": "1111", "bin6": "411111", "brand": "VISA"}, None, "CANCELLED"),
        ("CIT, capture required, merchant captures", {"transactionType": "AUTHORIZATION"}, "capture", "APPROVED"),
        ("CIT, capture required, merchant cancels", {"transactionType": "AUTHORIZATION"}, "cancel", "CANCELLED"),
        ("CIT, approved at once", {}, None, "APPROVED"),
        ("CIT, declined", {"last4": "0002"}, None, "DECLINED"),
    )

    def run_lifecycle(self, *, timeout: float = 60.0) -> None:
        flex = self.stack.flexfactor_url
        faults = {"drop": 0.3, "duplicate": 0.3, "reorder": 0.3, "seed": 11}
        print(
            "\norder lifecycles: webhooks dropped, duplicated and reordered "
            f"({', '.join(f'{k} {v}' for k, v in faults.items())}); the poller runs every "
            f"{self.stack.config.schedule_seconds:g} s"
        )
        httpx.post(flex + "/__emulator/config", json={"webhooks": faults}).raise_for_status()
        orders: list[dict[str, Any]] = []
        for name, overrides, action, truth in self.LIFECYCLE:
            options = dict(overrides)
            expires_in = options.pop("expires_in", None)
            body = samples.decline(**options)
            if expires_in:
                body["expiryDateUtc"] = (datetime.now(UTC) + timedelta(seconds=expires_in)).isoformat()
            answer = self.decline(body)
            orders.append(
                {"name": name, "id": body["orderId"], "action": action, "truth": truth, "first": answer.json()}
            )
        started = time.perf_counter()
        finals: dict[str, dict[str, Any]] = {}
        acted: set[str] = set()
        while len(finals) < len(orders) and time.perf_counter() - started < timeout:
            for order in orders:
                if order["id"] in finals:
                    continue
                state = self.http.get(f"/orders/{order['id']}", headers=self.headers).json()
                status = state.get("status")
                if order["action"] and order["id"] not in acted and status in ("CAPTUREREQUIRED", "PROCESSING"):
                    if order["action"] == "capture" and status != "CAPTUREREQUIRED":
                        continue
                    response = self.http.post(f"/orders/{order['id']}/{order['action']}", headers=self.headers)
                    acted.add(order["id"])
                    order["acted"] = f"{order['action']} -> HTTP {response.status_code}"
                    continue
                if status in ("APPROVED", "DECLINED", "CANCELLED", "EXPIRED", "NOT_SUBMITTED"):
                    finals[order["id"]] = state
            time.sleep(0.25)
        httpx.post(flex + "/__emulator/webhooks/flush", timeout=15.0)
        time.sleep(1.5)  # the events tap drains every second
        truth = {o["referenceNumber"]: o for o in httpx.get(flex + "/__emulator/orders").json()["orders"]}
        fates = httpx.get(flex + "/__emulator/webhooks").json()["webhooks"]
        events = self.http.get("/__local/events").json()["events"]

        for order in orders:
            self.step(f"{order['name']}", lambda order=order: self._judge(order, finals, truth, fates, events))

        def queues_empty() -> tuple[bool, str]:
            sqs = self.stack.aws_client("sqs")
            counts = {}
            for logical_id in ("OrderUpdatesDeadLetterQueue", "DeclinesDeadLetterQueue", "OrderEventsFailureQueue"):
                url = self.stack.stack.physical_ids[logical_id]
                attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
                counts[logical_id] = int(attrs["Attributes"]["ApproximateNumberOfMessages"])
            by_fate: dict[str, int] = {}
            for fate in fates:
                by_fate[fate["fate"]] = by_fate.get(fate["fate"], 0) + 1
            summary = ", ".join(f"{k} {v}" for k, v in sorted(by_fate.items()))
            return not any(counts.values()), f"dead-letter and event-failure queues empty; webhooks: {summary}"

        self.step("nothing lost: dead-letter and event-failure queues empty", queues_empty)

    @staticmethod
    def _judge(order, finals, truth, fates, events) -> tuple[bool, str]:
        state = finals.get(order["id"])
        if state is None:
            return False, f"not resolved in time (expected {order['truth']})"
        history = state.get("history", [])
        applied = [h for h in history if "kind" not in h]
        notes = [h for h in history if "kind" in h]
        final = applied[-1]
        provider = truth.get(order["id"])
        provider_final = (provider or {}).get("statusName")
        mine = [e for e in events if (e.get("detail") or {}).get("orderId") == order["id"]]
        # events are counted by changeId (a redelivered event repeats one): every version, the claim included
        change_ids = {e["detail"]["changeId"] for e in mine}
        published = sorted(int(c.rsplit(":", 1)[1]) for c in change_ids)
        expected_versions = [h["version"] for h in applied]
        created = datetime.fromisoformat(state["createdAt"].replace("Z", "+00:00"))
        ended = datetime.fromisoformat(final["at"].replace("Z", "+00:00"))
        webhooks = [f["fate"] for f in fates if f.get("ExternalOrderId") == order["id"]]
        ok = (
            state["status"] == order["truth"]
            and (provider is None or _same_end(provider_final, state["status"]))
            and published == expected_versions
        )
        path = " -> ".join(f"{h['status']}({h['source']})" for h in applied)
        return ok, (
            f"{state['status']:<9} by {final['source']:<7} in {(ended - created).total_seconds():5.1f} s; "
            f"{path}; ignored {len(notes)}; webhooks {','.join(webhooks) or '-'}; "
            f"events {len(published)}/{len(expected_versions)} changeIds ({len(mine) - len(change_ids)} repeated)"
        )

    # -- the event contract ---------------------------------------------------------

    def check_events(self) -> None:
        """Every event the run published (the local events tap) against its detail-type's
        JSON Schema in schemas/events/."""
        from devstack import event_schemas

        print("\nthe event contract (schemas/events/):")

        def contract() -> tuple[bool, str]:
            events: list[dict[str, Any]] = []
            for _ in range(5):  # until the tap (drained every second) has them all
                listed = self.http.get("/__local/events").json()["events"]
                if events and len(listed) == len(events):
                    break
                events = listed
                time.sleep(1.1)
            invalid = {}
            for event in events:
                problems = event_schemas.validate_event(event)
                if problems:
                    invalid[str((event.get("detail") or {}).get("changeId"))] = problems
            kinds: dict[str, int] = {}
            for event in events:
                kinds[str(event.get("detail-type"))] = kinds.get(str(event.get("detail-type")), 0) + 1
            summary = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
            if invalid:
                change_id, problems = next(iter(invalid.items()))
                return False, f"{len(invalid)} of {len(events)} events invalid; {change_id}: {'; '.join(problems[:3])}"
            return bool(events), f"{len(events)} events, all valid ({summary or 'none published'})"

        self.step("every event published matches its schema", contract)

    def check_logs(self, log_file: Path) -> None:
        print("\ncard data:")

        def scan() -> tuple[bool, str]:
            text = log_file.read_text(encoding="utf-8")
            lines = text.count("\n")
            leaked = sorted(set(find_pans(text)) & set(CARDS.values()))
            return not leaked and lines > 0, (
                f"{lines} log lines scanned, card numbers found: {len(leaked)}" if not leaked else f"LEAKED {leaked}"
            )

        self.step("no card number in any log line", scan)


def _same_end(provider_status_name: str | None, ours: str) -> bool:
    """Does FlexFactor's final order status name agree with ours?"""
    from decline_rescue.providers.flexfactor.vocabulary import from_provider_order

    mapped, _ = from_provider_order({"statusName": provider_status_name})
    # FlexFactor's orders have no Declined status: a declined order is Cancelled there
    return mapped == ours or (ours == "DECLINED" and mapped == "CANCELLED")


def operator_report(state_file: Path) -> None:
    """What the operator's CLI reports of the run (the same command, on the demo's stack)."""
    import subprocess

    print("\nthe operator's report of this run (decline-rescue --local report --since 1h):", flush=True)
    env = {**os.environ, "DECLINE_RESCUE_LOCAL_FILE": str(state_file)}
    command = [sys.executable, "-m", "devstack.ops", "--local", "report", "--since", "1h"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    print(done.stdout.rstrip() or done.stderr.rstrip(), flush=True)


def main() -> int:
    log_file = Path(os.environ.get("DEMO_LOG_FILE") or ROOT / ".local" / "demo.log")
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.write_text("")
    from devstack.ops import localstate
    from devstack.parameters import overrides_from_env

    # DEMO_KEEP_STACK=1: the stack stays up after the run (Ctrl-C stops it), described where
    # `decline-rescue --local` looks; otherwise in a file of the demo's own
    keep = os.environ.get("DEMO_KEEP_STACK") == "1"
    state_file = localstate.default_path() if keep else ROOT / ".local" / "demo-stack.json"
    config = StackConfig.ephemeral(
        state_file=state_file,
        echo_logs=False,
        log_file=log_file,
        # a local run cannot wait minutes: orders move every second, the poller runs every
        # two seconds and first looks at an order three seconds after a change
        schedule_seconds=2.0,
        flexfactor_step_seconds=1.0,
        parameters={"PollFirstDelaySeconds": "3", "ExpiryGraceSeconds": "3"},
        # PARAMETER_OVERRIDES="Key=Value ..." over those (checked against the template's constraints)
        parameter_overrides=overrides_from_env(),
    )
    print("decline-rescue demo: starting the local stack (moto, emulators, gateway, functions, queue pollers) ...")
    started = time.perf_counter()
    stack = LocalStack(config)
    try:
        stack.start()
        print(f"  up in {(time.perf_counter() - started):.1f} s\n{stack.describe()}")
        demo = Demo(stack)
        demo.run()
        operator_report(state_file)
        if keep:
            print("\nthe stack stays up (DEMO_KEEP_STACK=1): decline-rescue --local ... ; Ctrl-C stops it")
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                pass
    finally:
        stack.stop()
    demo.check_logs(log_file)
    counted = [s for s in demo.steps if not s.skipped]
    skipped = [s for s in demo.steps if s.skipped]
    failed = [s for s in counted if not s.ok]
    total = sum(s.ms for s in counted)
    print(
        f"\nsummary: {len(counted) - len(failed)}/{len(counted)} steps passed in {total:.0f} ms"
        + (f" ({len(skipped)} skipped: {'; '.join(s.detail for s in skipped)})" if skipped else "")
        + f"; logs in {log_file}"
    )
    for step in failed:
        print(f"  FAILED: {step.name}: {step.detail}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
