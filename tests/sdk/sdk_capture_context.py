"""Generate a capture context with the official Cybersource Python SDK and verify it with the SDK's parser.

Runs in the SDK's own virtualenv (``.venv-sdk``, never the project's: the SDK replaces urllib3)::

    .venv-sdk/bin/python tests/sdk/sdk_capture_context.py --host 127.0.0.1:PORT --ca-file ca.pem

The server at ``--host`` must speak TLS with a certificate issued by ``--ca-file``: the SDK sends
the API call to ``https://{run_environment}`` and fetches the JWT's signing key from the hard-wired
``https://{run_environment}/flex/v2/public-keys/{kid}``. The SDK is configured with its own
``testrest`` sample merchant (``authenticationsdk.test.MockData``); ``--shared-secret`` replaces the
secret (to see a wrong one refused).

Prints one JSON line on stdout and exits 0 on success::

    {"status": 201, "jwt_kid": "...", "payload": {...}}

or exits 1 with ``{"error": "<ExceptionType>", "status": <HTTP status or null>, "message": "..."}``.

Only two things outside the SDK's request/verify code are touched:

- ``certifi.where`` returns certifi's bundle plus the test CA. Both the API client and the key
  fetch pass ``ca_certs=certifi.where()`` explicitly, so ``SSL_CERT_FILE`` and friends are ignored.
- ``ApiClient.get_client_id`` (the ``v-c-client-id`` header) only if the SDK's own
  ``pkg_resources`` lookup fails in this environment; the replacement returns the same value.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import importlib.metadata
import json
import os
import sys
import tempfile
import warnings
from typing import Any

# The field selection of the project's default capture context (decline_rescue.runtime.settings
# DEFAULT_CAPTURE_REQUIRED / DEFAULT_CAPTURE_OPTIONAL), in the SDK's "fields" form.
CARD_FIELDS = {
    "fields": {
        "paymentInformation": {
            "card": {
                "number": {},
                "securityCode": {"required": False},
                "expirationMonth": {"required": False},
                "expirationYear": {"required": False},
                "type": {"required": False},
            }
        }
    }
}


def trust_ca(ca_file: str, workdir: str) -> None:
    """Point certifi at its own bundle plus ``ca_file`` (before the SDK creates any pool)."""
    import certifi

    bundle = os.path.join(workdir, "bundle.pem")
    with open(bundle, "w") as out, open(certifi.where()) as base, open(ca_file) as extra:
        out.write(base.read().rstrip("\n") + "\n" + extra.read())
    certifi.where = lambda: bundle


def ensure_client_id(cybersource: Any) -> None:
    try:
        cybersource.ApiClient.get_client_id(None)
    except Exception:  # noqa: BLE001 - pkg_resources.DistributionNotFound and friends
        value = "cybs-rest-sdk-python-" + importlib.metadata.version("cybersource-rest-client-python")
        cybersource.ApiClient.get_client_id = lambda self: value


def jwt_header(token: str) -> dict[str, Any]:
    head = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))


def run(host: str, ca_file: str, shared_secret: str | None) -> dict[str, Any]:
    import CyberSource
    from authenticationsdk.test.MockData import MockData
    from CyberSource.utilities.flex.CaptureContextParsingUtility import parse_capture_context_response

    ensure_client_id(CyberSource)
    sample = MockData.HTTP_VALUES
    config = {
        "authentication_type": "HTTP_Signature",
        "merchantid": sample["merchantid"],
        "merchant_keyid": sample["merchant_keyid"],
        "merchant_secretkey": shared_secret or sample["merchant_secretkey"],
        # Signed Host header, API base URL (https://...) and public-key fetch host, all at once.
        "run_environment": host,
    }
    api = CyberSource.FlexAPIApi(config)
    # This SDK version returns (data, status, raw body) even without _with_http_info.
    token, status, _ = api.generate_flex_api_capture_context(json.dumps(CARD_FIELDS))
    payload = parse_capture_context_response(token, api.api_client.mconfig)
    return {"status": status, "jwt_kid": jwt_header(token).get("kid"), "payload": payload}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", required=True, help="host:port of the TLS server (the SDK's run_environment)")
    parser.add_argument("--ca-file", required=True, help="PEM of the CA that issued the server's certificate")
    parser.add_argument("--shared-secret", help="use this base64 shared secret instead of the sample one")
    args = parser.parse_args()

    stdout = sys.stdout
    with tempfile.TemporaryDirectory(prefix="sdk-cc-") as workdir:
        trust_ca(args.ca_file, workdir)
        try:
            # Anything the SDK prints goes to stderr: stdout carries exactly one JSON line.
            with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = run(args.host, args.ca_file, args.shared_secret)
        except Exception as exc:  # noqa: BLE001 - every failure is reported, typed
            result = {"error": type(exc).__name__, "status": getattr(exc, "status", None), "message": str(exc)}
    print(json.dumps(result, default=str), file=stdout, flush=True)
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())
