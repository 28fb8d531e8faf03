"""decline-rescue shared package: settings, observability, domain logic and adapters.

Deployed as a Lambda layer; imported by the thin handlers in ``functions/``.
Layering: handler -> domain (``capture``) -> adapters (``adapters.*``). Only adapters
touch boto3 or httpx.
"""
