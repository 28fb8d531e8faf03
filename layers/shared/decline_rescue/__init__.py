"""decline-rescue shared package, deployed as a Lambda layer and imported by the thin
handlers in ``functions/``.

Layering (README, "Layout"): handler -> ``services`` (one module per job) -> ``domain``
(pure rules and types) and ``infra`` (AWS, HTTP) and ``providers`` (FlexFactor,
Cybersource); ``runtime`` holds what every function needs around them (settings, the
wiring of lazily built clients, router, batch, observability). Only ``infra`` and
``providers`` touch botocore or httpx.
"""
