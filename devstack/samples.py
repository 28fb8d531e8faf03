"""Fresh, valid declines for the demo and local runs, built from the sample events in
``events/evaluate_decline`` (the seed's examples, corrected)."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from devstack.template import ROOT


@lru_cache(maxsize=2)
def _sample(name: str) -> dict[str, Any]:
    event = json.loads((ROOT / "events" / "evaluate_decline" / name).read_text())
    return json.loads(event["body"])


def decline(
    *, mit: bool = False, last4: str = "4444", bin6: str = "555555", brand: str = "MASTERCARD", **top: Any
) -> dict[str, Any]:
    """A decline with a new orderId and idempotencyKey, declined just now."""
    body = copy.deepcopy(_sample("post_mit.json" if mit else "post_cit.json"))
    now = datetime.now(timezone.utc)
    body["orderId"] = f"{'mit' if mit else 'cit'}-{uuid.uuid4().hex[:12]}"
    body["idempotencyKey"] = str(uuid.uuid4())
    body["transaction"].update(timestampUtc=now.isoformat(), amount=1999, responseCode="51")
    body["paymentMethod"].update(
        cardLast4Digits=last4, cardBinNumber=bin6, cardBrand=brand, cardFingerprint=uuid.uuid4().hex
    )
    if mit:
        body["expiryDateUtc"] = (now + timedelta(days=10)).isoformat()
    body.update(top)
    return body
