"""The official Cybersource SDK's side of ``bench.capture_context``: runs in ``.venv-sdk``.

Does what ``tests/sdk/sdk_capture_context.py`` does (and reuses it: the same TLS trust
through ``certifi.where``, the same ``testrest`` sample merchant, ``run_environment`` =
the emulator's host:port, the same field selection), timed: the SDK generates a capture
context and verifies it with its own parser (``parse_capture_context_response``, which
fetches the signing key once and caches it), first in a fresh process (import and first
call, from the top of this script), then, with ``--serve``, once more for each line read
on stdin, on the same ``FlexAPIApi`` (its connection pool kept, as a warm application
would keep it), so that the benchmark can interleave these calls with the handler's.

    .venv-sdk/bin/python bench/capture_context_sdk.py --host 127.0.0.1:PORT --ca-file ca.pem [--serve]

Prints one JSON line ``{"first_call_s", "status", "jwt_kid", "required", "optional"}`` (or
``{"error": ...}`` and exit 1), then with ``--serve`` one ``{"call_s": ...}`` line per
line read, until stdin closes.
"""

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402 - the clock starts before any import
import contextlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "sdk"))
import sdk_capture_context as sdk  # noqa: E402


def run(host: str, ca_file: str, serve: bool, workdir: str, out) -> dict:
    sdk.trust_ca(ca_file, workdir)
    import CyberSource
    from authenticationsdk.test.MockData import MockData
    from CyberSource.utilities.flex.CaptureContextParsingUtility import parse_capture_context_response

    sdk.ensure_client_id(CyberSource)
    sample = MockData.HTTP_VALUES
    config = {
        "authentication_type": "HTTP_Signature",
        "merchantid": sample["merchantid"],
        "merchant_keyid": sample["merchant_keyid"],
        "merchant_secretkey": sample["merchant_secretkey"],
        "run_environment": host,
    }
    api = CyberSource.FlexAPIApi(config)

    def call() -> tuple[int, str, dict]:
        token, status, _ = api.generate_flex_api_capture_context(json.dumps(sdk.CARD_FIELDS))
        payload = parse_capture_context_response(token, api.api_client.mconfig)
        return status, token, payload

    status, token, payload = call()
    first = time.perf_counter() - STARTED
    data = payload["ctx"][0]["data"]
    result = {
        "first_call_s": first,
        "status": status,
        "jwt_kid": sdk.jwt_header(token).get("kid"),
        "required": data.get("requiredFields"),
        "optional": data.get("optionalFields"),
    }
    if serve:
        print(json.dumps(result), file=out, flush=True)
        for _ in sys.stdin:
            began = time.perf_counter()
            status, token, payload = call()
            elapsed = time.perf_counter() - began
            if status != 201:
                raise RuntimeError(f"the SDK's call answered {status}")
            print(json.dumps({"call_s": elapsed}), file=out, flush=True)
        return {"done": True}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", required=True, help="host:port of the TLS emulator (the SDK's run_environment)")
    parser.add_argument("--ca-file", required=True)
    parser.add_argument("--serve", action="store_true", help="one more timed call per line read on stdin")
    args = parser.parse_args()
    stdout = sys.stdout
    with tempfile.TemporaryDirectory(prefix="sdk-bench-") as workdir:
        try:
            with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = run(args.host, args.ca_file, args.serve, workdir, stdout)
        except Exception as exc:  # noqa: BLE001 - reported, typed
            result = {"error": type(exc).__name__, "message": str(exc)[:500]}
    print(json.dumps(result), file=stdout, flush=True)
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())
