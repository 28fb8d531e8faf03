"""``make chaos``: the whole local stack on its worst day, then an audit of every order.

``python -m devstack.chaos [--orders 300] [--seed N] [--kill 0.05] [--webhook-faults 0.3]
[--provider-faults 0.15] [--hot-cards 6] [--per-hot-card 15] [--minutes 6]``

What it injects, all at once, on one local stack (moto server, the emulators, a pool of
processes per function, the pollers, the schedule):
- ``--orders`` declines, customer- and merchant-initiated, of every FlexFactor outcome
  (approved, declined, challenge passed and failed, capture required then captured or
  cancelled, cancelled, expired), sent by ``--clients`` concurrent callers that retry a
  5xx or a 409 REQUEST_IN_PROGRESS with the same idempotencyKey, as a merchant's would;
- bursts of the same card: ``--hot-cards`` Mastercard cards get ``--per-hot-card`` declines
  each, sent at the same moment (Mastercard allows 10 a day: the rest must end
  NOT_SUBMITTED, never reach FlexFactor);
- FlexFactor's webhooks dropped, duplicated, reordered and delayed (``--webhook-faults``
  each), and FlexFactor answering 5xx and timing out in bursts (``--provider-faults``);
- function processes SIGKILLed at random points mid-invocation (``--kill``: the share of
  invocations armed; every function, the writer and the event publisher included);
- inputs that must be refused: card numbers and CVVs in a decline, and queued messages
  that are not declines (these, and only these, may end in a dead-letter queue).

What it checks and prints at the end:
- every order's final status equals FlexFactor's truth (the emulator's record; a decline
  FlexFactor never saw must be NOT_SUBMITTED); 0 orders lost or stuck;
- 0 changes applied twice; versions without gaps;
- every applied change has its event: distinct changeIds = applied changes (the
  duplicates the at-least-once publisher sent are counted, not failed);
- reattempt budgets never exceeded (per hot card: orders FlexFactor saw <= 10);
- dead-letter and event-failure queues empty but for the inputs meant to be refused;
- 0 card numbers in any log line, table item, queue message or event.
Exit status 0 when every check holds.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from decline_rescue.domain import statuses as st
from decline_rescue.domain.carddata import find_pans
from decline_rescue.providers.flexfactor import vocabulary
from devstack import samples
from devstack.environments import Chaos
from devstack.stack import ROOT, LocalStack, StackConfig

TERMINAL = ("APPROVED", "DECLINED", "CANCELLED", "EXPIRED", "NOT_SUBMITTED")
# (decline options, the merchant's action once the order allows it)
SCENARIOS = (
    ({"mit": True, "last4": "0007"}, None),  # MIT, FlexFactor completes it
    ({"mit": True, "last4": "0069"}, None),  # MIT, FlexFactor cancels it
    ({"mit": True, "last4": "0077", "expires_in": (10, 15)}, None),  # MIT, expires unrescued
    ({"mit": True, "last4": "3184"}, None),  # MIT, approved at once
    ({"mit": True, "last4": "0077", "expires_in": (60, 90)}, "cancel"),  # MIT, the merchant cancels
    ({"last4": "0259"}, None),  # CIT, challenge
    ({"last4": "1111", "bin6": "411111", "brand": "VISA"}, None),  # CIT, Visa
    ({"transactionType": "AUTHORIZATION"}, "capture"),  # CIT, capture required, captured
    ({"transactionType": "AUTHORIZATION"}, "cancel"),  # CIT, capture required, cancelled
    ({}, None),  # CIT, approved at once
    ({"last4": "0002"}, None),  # CIT, declined
)
MASTERCARD_DAILY = 10
REFUSED_PAN = "5555555555554444"  # a public test card: it must never be stored, queued, logged or published


@dataclass
class Options:
    orders: int = 300
    seed: int = 0
    kill: float = 0.05
    webhook_faults: float = 0.3
    provider_faults: float = 0.15
    hot_cards: int = 6
    per_hot_card: int = 15
    clients: int = 8
    minutes: float = 6.0
    log_file: Path = ROOT / ".local" / "chaos.log"


@dataclass
class Order:
    id: str
    body: dict[str, Any]
    action: str | None = None
    hot_card: str | None = None
    expires_in: float | None = None  # seconds after it is sent
    answer: dict[str, Any] | None = None
    final: dict[str, Any] | None = None


@dataclass
class Report:
    figures: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def check(self, ok: bool, what: str) -> None:
        if not ok:
            self.failures.append(what)

    def print(self) -> None:
        width = max(len(k) for k in self.figures)
        for name, value in self.figures.items():
            print(f"  {name:<{width}}  {value}")
        print()
        for failure in self.failures[:40]:
            print(f"  FAILED  {failure}")
        print("chaos: " + ("every check holds" if not self.failures else f"{len(self.failures)} check(s) failed"))


class Caller:
    """A merchant's client: retries 5xx, and 409 REQUEST_IN_PROGRESS, with the same key."""

    def __init__(self, stack: LocalStack, deadline_seconds: float = 90.0) -> None:
        self.http = stack.client("operations", timeout=40.0)
        self.headers: dict[str, str] = {}
        self.deadline_seconds = deadline_seconds
        self.retries = Counter()

    def send(self, method: str, path: str, body: Any = None) -> httpx.Response:
        ends = time.monotonic() + self.deadline_seconds
        pause = 0.2
        while True:
            response = self.http.request(method, path, json=body, headers=self.headers)
            busy = response.status_code == 409 and response.json().get("error", {}).get("code") in (
                "REQUEST_IN_PROGRESS",
                "CARD_BUSY",
                "ORDER_BUSY",
            )
            if (response.status_code < 500 and not busy) or time.monotonic() > ends:
                return response
            self.retries[response.status_code] += 1
            time.sleep(pause)
            pause = min(pause * 1.5, 2.0)


def _orders(options: Options, rng: random.Random) -> list[Order]:
    orders = []
    for _ in range(options.orders):
        decline_options, action = rng.choice(SCENARIOS)
        decline_options = dict(decline_options)
        window = decline_options.pop("expires_in", None)
        body = samples.decline(**decline_options)
        expires_in = rng.uniform(*window) if window else None
        orders.append(Order(body["orderId"], body, action, expires_in=expires_in))
    for card in range(options.hot_cards):
        fingerprint = f"chaos-hot-card-{options.seed}-{card}"
        for _ in range(options.per_hot_card):
            body = samples.decline(last4="4444")  # a Mastercard CIT FlexFactor approves
            body["paymentMethod"]["cardFingerprint"] = fingerprint
            orders.append(Order(body["orderId"], body, None, fingerprint))
    return orders


def _refused_inputs(stack: LocalStack) -> tuple[list[dict[str, Any]], int]:
    """Declines that must be refused (400) and queued messages that must be dead-lettered."""
    hostile = []
    for where in ("cardNumber", "verificationValue"):
        body = samples.decline()
        body["paymentMethod"][where] = REFUSED_PAN if where == "cardNumber" else "123"
        hostile.append(body)
    sqs = stack.aws_client("sqs")
    url = stack.stack.physical_ids["DeclinesQueue"]
    junk = ["not json", json.dumps({"orderId": "x"}), json.dumps({"paymentMethod": {"cardNumber": REFUSED_PAN}})]
    for message in junk:
        sqs.send_message(QueueUrl=url, MessageBody=message)
    return hostile, len(junk)


def _drive(stack: LocalStack, caller: Caller, orders: list[Order], options: Options, report: Report) -> None:
    """Submit every decline (hot cards all at once), then act and wait until each ends."""
    hot = [o for o in orders if o.hot_card]
    rest = [o for o in orders if not o.hot_card]

    def submit(order: Order) -> None:
        if order.expires_in:
            order.body["expiryDateUtc"] = (datetime.now(UTC) + timedelta(seconds=order.expires_in)).isoformat()
        response = caller.send("POST", "/declines", order.body)
        order.answer = {"http": response.status_code, **response.json()}

    with ThreadPoolExecutor(options.clients) as pool:
        list(pool.map(submit, rest[: len(rest) // 2]))
    with ThreadPoolExecutor(max(len(hot), 1)) as pool:  # the same cards, at the same moment
        list(pool.map(submit, hot))
    with ThreadPoolExecutor(options.clients) as pool:
        list(pool.map(submit, rest[len(rest) // 2 :]))
    for order in orders:
        code = order.answer["http"]
        report.check(code in (200, 202), f"{order.id}: submitted with HTTP {code}: {order.answer}")

    ends = time.monotonic() + options.minutes * 60
    acted: set[str] = set()
    lock = threading.Lock()

    def look(order: Order) -> None:
        state = caller.send("GET", f"/orders/{order.id}").json()
        status = state.get("status")
        wanted = ("CAPTUREREQUIRED",) if order.action == "capture" else ("CAPTUREREQUIRED", "PROCESSING")
        if order.action and order.id not in acted and status in wanted:
            answer = caller.send("POST", f"/orders/{order.id}/{order.action}")
            if answer.status_code == 200:
                with lock:
                    acted.add(order.id)
        if status in TERMINAL:
            order.final = state

    while time.monotonic() < ends:
        waiting = [o for o in orders if o.final is None and o.answer["http"] in (200, 202)]
        if not waiting:
            break
        with ThreadPoolExecutor(options.clients) as pool:
            list(pool.map(look, waiting))
        time.sleep(0.5)


def _settle(stack: LocalStack) -> None:
    """Let the last deliveries, updates and events go through."""
    stack.set_chaos(0.0)
    httpx.post(stack.flexfactor_url + "/__emulator/webhooks/flush", json={"timeout": 30}, timeout=40.0)
    sqs = stack.aws_client("sqs")
    ids = stack.stack.physical_ids
    for _ in range(120):
        counts = [
            sqs.get_queue_attributes(
                QueueUrl=ids[q], AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
            )["Attributes"]
            for q in ("OrderUpdatesQueue", "DeclinesQueue")
        ]
        if all(
            c["ApproximateNumberOfMessages"] == "0" and c["ApproximateNumberOfMessagesNotVisible"] == "0"
            for c in counts
        ):
            break
        time.sleep(0.5)
    time.sleep(3.0)  # the stream's publisher and the events tap


def _audit(stack: LocalStack, caller: Caller, orders: list[Order], junk: int, report: Report) -> None:
    flex = stack.flexfactor_url
    truth = {o["referenceNumber"]: o for o in httpx.get(flex + "/__emulator/orders").json()["orders"]}
    events = caller.send("GET", "/__local/events").json()["events"]
    by_order: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_order.setdefault((event.get("detail") or {}).get("orderId"), []).append(event["detail"])

    lost = [o.id for o in orders if o.answer["http"] in (200, 202) and o.final is None]
    report.check(not lost, f"{len(lost)} order(s) lost or stuck: {lost[:10]}")
    wrong, twice, gaps, missing_events, duplicates, applied_changes = [], [], [], [], 0, 0
    for order in orders:
        if order.final is None:
            continue
        state = caller.send("GET", f"/orders/{order.id}").json()
        provider = truth.get(order.id)
        expected = vocabulary.from_provider_order(provider)[0] if provider else "NOT_SUBMITTED"
        if state["status"] == "DECLINED" and expected == "CANCELLED":
            expected = "DECLINED"  # FlexFactor's Cancelled for a declined CIT
        if provider is not None and not provider.get("final"):
            expected = None  # FlexFactor has not ended it either
        if expected is not None and state["status"] != expected:
            wrong.append(f"{order.id} {state['status']} != {expected}")
        applied = [h for h in state["history"] if "kind" not in h]
        applied_changes += len(applied)
        statuses = [h["status"] for h in applied]
        if len(statuses) != len(set(statuses)) or any(not st.allowed(a, b) for a, b in itertools.pairwise(statuses)):
            twice.append(f"{order.id} {statuses}")
        if [h["version"] for h in applied] != list(range(1, len(applied) + 1)):
            gaps.append(order.id)
        published = Counter(d["changeId"] for d in by_order.get(order.id, []))
        duplicates += sum(n - 1 for n in published.values())
        wanted = {f"{order.id}:{h['version']}" for h in applied}
        if set(published) != wanted:
            missing_events.append(f"{order.id} events {sorted(published)} != {sorted(wanted)}")
    distinct = sum(len({d["changeId"] for d in by_order.get(o.id, [])}) for o in orders if o.final is not None)
    report.check(not wrong, f"{len(wrong)} order(s) not in FlexFactor's state: {wrong[:10]}")
    report.check(not twice, f"{len(twice)} order(s) with a change applied twice: {twice[:10]}")
    report.check(not gaps, f"{len(gaps)} order(s) with a gap in versions: {gaps[:10]}")
    report.check(not missing_events, f"{len(missing_events)} order(s) whose events differ: {missing_events[:5]}")

    over = {}
    for card in {o.hot_card for o in orders if o.hot_card}:
        seen = sum(1 for o in orders if o.hot_card == card and o.id in truth)
        if seen > MASTERCARD_DAILY:
            over[card] = seen
    report.check(not over, f"reattempt budgets exceeded: {over}")

    sqs = stack.aws_client("sqs")
    ids = stack.stack.physical_ids
    letters = {}
    for queue in ("OrderUpdatesDeadLetterQueue", "DeclinesDeadLetterQueue", "OrderEventsFailureQueue"):
        attrs = sqs.get_queue_attributes(QueueUrl=ids[queue], AttributeNames=["ApproximateNumberOfMessages"])
        letters[queue] = int(attrs["Attributes"]["ApproximateNumberOfMessages"])
    report.check(
        letters == {"OrderUpdatesDeadLetterQueue": 0, "DeclinesDeadLetterQueue": junk, "OrderEventsFailureQueue": 0},
        f"dead letters other than the {junk} refused inputs: {letters}",
    )

    leaks = _card_numbers(stack, events)
    report.check(not any(leaks.values()), f"card numbers found: {leaks}")

    fates = Counter(w["fate"] for w in httpx.get(flex + "/__emulator/webhooks").json()["webhooks"])
    runtime = stack.runtime_stats()
    kills = sum(len(s["chaos_kills"]) for s in runtime.values())
    statuses = Counter(o.final["status"] for o in orders if o.final)
    report.figures.update(
        {
            "orders": f"{len(orders)} ({sum(o.body.get('isMIT', False) for o in orders)} MIT, "
            f"{sum(1 for o in orders if o.hot_card)} on {len({o.hot_card for o in orders if o.hot_card})} hot cards)",
            "final statuses": dict(sorted(statuses.items())),
            "equal to FlexFactor's truth": f"{sum(1 for o in orders if o.final) - len(wrong)}/{len(orders)}",
            "lost or stuck": len(lost),
            "changes applied": applied_changes,
            "changes applied twice": len(twice),
            "events: distinct changeIds": f"{distinct} for {applied_changes} applied changes; "
            f"{duplicates} duplicate deliveries",
            "orders whose events differ": len(missing_events),
            "hot cards over budget": len(over),
            "webhooks": dict(sorted(fates.items())),
            "processes killed mid-invocation": kills,
            "client retries (by HTTP status)": dict(caller.retries),
            "dead letters": letters,
            "card numbers found": leaks,
        }
    )


def _card_numbers(stack: LocalStack, events: list[dict[str, Any]]) -> dict[str, int]:
    """Card numbers in the logs, the orders table, every queue, and the events."""
    test_cards = {REFUSED_PAN, "4111111111111111", "4000002760003184"}

    def count(text: str) -> int:
        return len(set(find_pans(text)) & test_cards)

    found = {"logs": count(stack.config.log_file.read_text(encoding="utf-8", errors="replace"))}
    ddb = stack.aws_client("dynamodb")
    items = []
    for page in ddb.get_paginator("scan").paginate(TableName=stack.stack.physical_ids["OrdersTable"]):
        items += page["Items"]
    found["table items"] = count(json.dumps(items))
    sqs = stack.aws_client("sqs")
    texts = []
    for url in sqs.list_queues().get("QueueUrls", []):
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
        texts += [m["Body"] for m in messages]
    found["queue messages"] = count(json.dumps(texts))
    found["events"] = count(json.dumps(events))
    return found


def run(options: Options) -> Report:
    rng = random.Random(options.seed)
    report = Report()
    config = StackConfig.ephemeral(
        echo_logs=False,
        log_file=options.log_file,
        schedule_seconds=1.0,
        flexfactor_step_seconds=0.5,
        sqs_retry_seconds=8,  # (AWS waits the visibility timeout, 180 s: five receives span 15 minutes)
        parameters={"PollFirstDelaySeconds": "2", "ExpiryGraceSeconds": "2", "QueuedResendSeconds": "60"},
        chaos=Chaos(options.kill, options.seed),
    )
    started = time.monotonic()
    with LocalStack(config) as stack:
        flex = stack.flexfactor_url
        switches = {k: options.webhook_faults for k in ("drop", "duplicate", "reorder")}
        webhooks = {**switches, "delay": 1.0, "delay_probability": options.webhook_faults, "seed": options.seed}
        httpx.post(flex + "/__emulator/config", json={"webhooks": webhooks}).raise_for_status()
        for endpoint in ("evaluate", "orders"):
            faults: list[dict[str, Any]] = []
            while len(faults) < 4000:  # bursts: a run of failures, then a run of answers
                failing = rng.random() < options.provider_faults
                burst = rng.randint(1, 6)
                kind = (
                    (lambda: {"status": rng.choice((500, 502, 503))})
                    if rng.random() < 0.7
                    else (lambda: {"delay": 5.0})
                )
                faults += [kind() if failing else {} for _ in range(burst)]
            httpx.post(flex + "/__emulator/faults", json={"endpoint": endpoint, "faults": faults}).raise_for_status()

        caller = Caller(stack)
        orders = _orders(options, rng)
        hostile, junk = _refused_inputs(stack)
        for body in hostile:
            response = caller.send("POST", "/declines", body)
            report.check(response.status_code == 400, f"a decline carrying card data answered {response.status_code}")
        _drive(stack, caller, orders, options, report)
        _settle(stack)
        _audit(stack, caller, orders, junk, report)
    report.figures["seconds"] = round(time.monotonic() - started)
    report.figures["seed"] = options.seed
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description="decline-rescue's chaos run on the local stack")
    defaults = Options()
    parser.add_argument("--orders", type=int, default=defaults.orders)
    parser.add_argument("--seed", type=int, default=None, help="random when not given (printed)")
    parser.add_argument("--kill", type=float, default=defaults.kill, help="share of invocations armed to die")
    parser.add_argument("--webhook-faults", type=float, default=defaults.webhook_faults)
    parser.add_argument("--provider-faults", type=float, default=defaults.provider_faults)
    parser.add_argument("--hot-cards", type=int, default=defaults.hot_cards)
    parser.add_argument("--per-hot-card", type=int, default=defaults.per_hot_card)
    parser.add_argument("--clients", type=int, default=defaults.clients)
    parser.add_argument("--minutes", type=float, default=defaults.minutes, help="the most the orders may take to end")
    args = parser.parse_args()
    options = Options(
        orders=args.orders,
        seed=args.seed if args.seed is not None else random.randrange(1_000_000),
        kill=args.kill,
        webhook_faults=args.webhook_faults,
        provider_faults=args.provider_faults,
        hot_cards=args.hot_cards,
        per_hot_card=args.per_hot_card,
        clients=args.clients,
        minutes=args.minutes,
    )
    print(f"chaos run: {options}", flush=True)
    report = run(options)
    report.print()
    return 0 if not report.failures else 1


if __name__ == "__main__":
    sys.exit(main())
