"""Rescue eligibility: decided before any provider call, from data (``data/retry_rules.json``).

A decline is not submitted when a rule stops it; the decision names the rule, says why
and carries the rules' version so a merchant can see what was applied:

- ``amount_out_of_range``: outside the configured bounds (seed: > $0 and < $200; the
  sandbox: > 10 and < 20000 cents);
- ``card_expired``: the card's expiry month is over;
- ``issuer_never_approves``: Visa reattempt category 1 codes (hard declines: lost,
  stolen, invalid card...), applied to every network, and a gateway's own hard-decline
  codes (NMI's 2xx codes, chosen by ``transaction.responseCodeSource``);
- ``data_quality``: Visa category 3 codes: revalidate the payment data first;
- ``mastercard_advice``: a Mastercard Merchant Advice Code that forbids a reattempt
  (03 do not try again, 21 stop recurring, 01/04 update the card first);
- ``mit_not_same_day``: a merchant-initiated decline not sent the day it failed;
- ``reattempt_budget``: the card's reattempt budget is spent (Visa 20 in 30 days from
  25 May 2025, 15 before; Mastercard 10 a day and 35 in 30 days; other networks use
  Visa's), counted per card in DynamoDB.

Budgets are reserved, not counted after the fact: a card's reservations are one counter
per day (``Budget``); a submission reserves one on today's counter, atomically, under the
condition that it stays within ``Budget.cap()`` (what every window still allows given the
days before today), so that concurrent declines for one card can never overrun it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from importlib import resources
from typing import Any

from decline_rescue.domain.contract import EvaluateRequest

MAC_KEYS = ("merchantadvicecode", "mac", "merchant_advice_code")


@lru_cache(maxsize=1)
def rules() -> dict[str, Any]:
    return json.loads(resources.files("decline_rescue.domain.data").joinpath("retry_rules.json").read_text())


@dataclass(frozen=True)
class Limits:
    amount_min_exclusive: int = 0
    amount_max_exclusive: int = 20000
    mit_max_age_hours: float = 24.0


@dataclass(frozen=True)
class Decision:
    eligible: bool
    rule: str | None = None
    detail: str = ""
    facts: dict[str, Any] = field(default_factory=dict)

    def reason(self) -> dict[str, Any]:
        return {"rule": self.rule, "detail": self.detail, "rulesVersion": rules()["version"], **self.facts}


def network(request: EvaluateRequest) -> str:
    brand = request.paymentMethod.brand.replace(" ", "")
    if brand.startswith("VISA"):
        return "visa"
    if brand.startswith(("MASTERCARD", "MC", "MAESTRO")):
        return "mastercard"
    bin_ = request.paymentMethod.cardBinNumber or (_pan(request) or "")[:6]  # 4-8 digits when given
    if bin_.startswith("4"):
        return "visa"
    if bin_[:2] in {"51", "52", "53", "54", "55"} or (len(bin_) >= 4 and 2221 <= int(bin_[:4]) <= 2720):
        return "mastercard"
    return "other"


def response_code(request: EvaluateRequest) -> str:
    code = request.transaction.responseCode.strip().upper()
    return code.zfill(2) if code.isdigit() and len(code) == 1 else code


def merchant_advice_code(request: EvaluateRequest) -> str | None:
    """Mastercard's MAC, from ``additionalFields`` (key merchantAdviceCode or mac) or an
    extra ``transaction.merchantAdviceCode`` field."""
    extra = (request.transaction.model_extra or {}).get("merchantAdviceCode")
    if extra is None:
        for item in request.additionalFields or []:
            if item.key and item.key.replace(" ", "").lower() in MAC_KEYS:
                extra = item.value
                break
    if extra is None:
        return None
    text = str(extra).strip()
    return text.zfill(2) if text.isdigit() else text.upper()


def _pan(request: EvaluateRequest) -> str | None:
    """The card number's digits when ``cardNumber`` holds one (card numbers allowed)."""
    from decline_rescue.domain.carddata import card_digits

    return card_digits(request.paymentMethod.cardNumber)


def card_key(request: EvaluateRequest) -> str:
    """Identifies a card for the reattempt budgets without the card number: the
    fingerprint when given, else brand, BIN, last four and expiry (taken from the card
    number itself when one is sent and they are not: never a hash of the number, which
    could be reversed); a token-only payment method (real clients send ``{Token: true,
    cardNumber: <token>}`` alone) is identified by its token's hash, which counts only the
    reattempts made with that token (a warning says so)."""
    pm = request.paymentMethod
    pan = _pan(request)
    bin_, last4 = pm.cardBinNumber or (pan[:6] if pan else None), pm.cardLast4Digits or (pan[-4:] if pan else None)
    if pm.cardFingerprint:
        basis = f"fp:{pm.cardFingerprint}"
    elif bin_ and last4:
        month, year = pm.expirationMonth or 0, pm.expirationYear or 0
        basis = f"{pm.brand}|{bin_[:6]}|{last4}|{month:02d}|{year}"
    else:
        basis = "tok:" + hashlib.sha256(pm.cardNumber.encode()).hexdigest()
    # base64url, not hex: a hex digest can hold a 13+ digit run that looks like a card number
    return base64.urlsafe_b64encode(hashlib.sha256(basis.encode()).digest()[:18]).decode()


def gateway_verdict(source: str, code: str) -> tuple[str, str, str] | None:
    """(never | data_quality | retry, meaning, gateway) for a gateway's own code, or None."""
    table = rules().get("gateways", {}).get(source.strip().lower())
    if not table:
        return None
    for verdict in ("never", "data_quality", "retry"):
        if code in table.get(verdict, {}):
            return verdict, table[verdict][code], source.strip().lower()
    return None


def visa_category(code: str) -> str:
    for name, category in rules()["visa"]["categories"].items():
        if code in category["codes"]:
            return name
    return "4"


def budget_limits(net: str, today: date) -> list[tuple[int, int]]:
    """(window_days, max_reattempts) pairs in force for a network on a day."""
    if net == "mastercard":
        return [(lim["window_days"], lim["max_reattempts"]) for lim in rules()["mastercard"]["limits"]]
    current = [lim for lim in rules()["visa"]["limits"] if date.fromisoformat(lim["from"]) <= today]
    latest = max(current, key=lambda lim: lim["from"])
    return [(latest["window_days"], latest["max_reattempts"])]


def decide(
    request: EvaluateRequest, *, limits: Limits, now: datetime, attempts_in: dict[int, int] | None = None
) -> Decision:
    """Whether to submit; ``attempts_in`` maps a window in days to the card's reattempts
    in that window (from the attempts store), for the budget rules."""
    amount = request.transaction.amount
    if not limits.amount_min_exclusive < amount < limits.amount_max_exclusive:
        return Decision(
            False,
            "amount_out_of_range",
            f"amount must be > {limits.amount_min_exclusive} and < {limits.amount_max_exclusive} cents",
            {"amount": amount},
        )
    expiry = request.paymentMethod.expiry()
    if expiry is not None and expiry < (now.year, now.month):
        return Decision(False, "card_expired", "the card expired: a reattempt cannot succeed")

    code = response_code(request)
    net = network(request)
    gateway = gateway_verdict(request.transaction.responseCodeSource or "", code)
    if gateway is not None:
        verdict, meaning, source = gateway
        if verdict == "never":
            return Decision(
                False,
                "issuer_never_approves",
                f"{source} code {code} ({meaning}): never retry",
                {"responseCode": code, "responseCodeSource": source, "network": net},
            )
        if verdict == "data_quality":
            return Decision(
                False,
                "data_quality",
                f"{source} code {code} ({meaning}): revalidate before retrying",
                {"responseCode": code, "responseCodeSource": source, "network": net},
            )
        category = "4"
    else:
        category = visa_category(code)
    if category == "1":
        return Decision(
            False,
            "issuer_never_approves",
            f"response code {code} means the issuer will never approve (never retry)",
            {"responseCode": code, "visaCategory": 1, "network": net},
        )
    if category == "3" and net == "visa":
        return Decision(
            False,
            "data_quality",
            f"response code {code} is a data-quality decline: revalidate before retrying",
            {"responseCode": code, "visaCategory": 3, "network": net},
        )
    mac = merchant_advice_code(request) if net == "mastercard" else None
    if mac is not None:
        advice = rules()["mastercard"]["merchant_advice_codes"].get(mac)
        if advice and not advice["reattempt"]:
            return Decision(
                False,
                "mastercard_advice",
                f"Mastercard advice code {mac}: {advice['name']}",
                {"merchantAdviceCode": mac, "network": net},
            )

    declined_at = request.transaction.declined_at()
    declined_at = min(declined_at, now) if declined_at is not None else None  # (in the future: now)
    if request.is_mit and declined_at is not None:  # unknown: counted from the time of receipt (a warning says so)
        age = now - declined_at
        if age > timedelta(hours=limits.mit_max_age_hours):
            return Decision(
                False,
                "mit_not_same_day",
                f"merchant-initiated declines must be sent the day they fail (within {limits.mit_max_age_hours:g} h)",
                {"declinedAt": declined_at.isoformat()},
            )

    for window, maximum in budget_limits(net, now.date()):
        used = (attempts_in or {}).get(window, 0)
        if used >= maximum:
            return Decision(
                False,
                "reattempt_budget",
                f"{net} allows {maximum} reattempts per card in {window} day(s); {used} used",
                {"network": net, "windowDays": window, "used": used, "max": maximum},
            )
    return Decision(True, facts={"network": net, "responseCode": code})


def budget_windows() -> list[int]:
    """Every window any network's budget counts over (how many days the store reads)."""
    windows = {lim["window_days"] for lim in rules()["visa"]["limits"]}
    windows |= {lim["window_days"] for lim in rules()["mastercard"]["limits"]}
    return sorted(windows)


@dataclass(frozen=True)
class Budget:
    """A card's reattempt budget as the store holds it: reservations per day (UTC), for
    the widest window's days up to ``today``, and the cap written on today's counter when
    it was made (None: no counter yet today)."""

    card: str
    network: str
    today: date
    days: dict[str, int]  # "yyyy-mm-dd" -> reservations that day
    today_cap: int | None = None

    def _used(self, window: int, *, before_today: bool = False) -> int:
        start = (self.today - timedelta(days=window - 1)).isoformat()
        end = self.today.isoformat()
        return sum(n for day, n in self.days.items() if start <= day <= end and not (before_today and day == end))

    def attempts_in(self) -> dict[int, int]:
        """Reservations in each window the network counts over, today's included."""
        return {window: self._used(window) for window, _ in budget_limits(self.network, self.today)}

    def cap(self) -> int:
        """How many reservations today's counter may hold: what every window still allows
        once the days before today are counted (those can only go down: a reservation is
        released when its decline ends unsubmitted)."""
        return max(
            0,
            min(
                maximum - self._used(window, before_today=True)
                for window, maximum in budget_limits(self.network, self.today)
            ),
        )

    def without(self, day: str) -> Budget:
        """The budget without one reservation of ``day`` (the order's own, when it decides again)."""
        days = dict(self.days)
        if days.get(day):
            days[day] -= 1
        return Budget(self.card, self.network, self.today, days, self.today_cap)
