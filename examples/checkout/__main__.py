"""``python -m examples.checkout``: run the sample shop's server in the foreground.

Every option has an environment variable (``CHECKOUT_*``), so credentials need not be on
the command line. See ``--help`` and examples/checkout/README.md.
"""

from __future__ import annotations

import argparse
import os
import sys

from examples.checkout.api import Credentials, DeclineRescueApi
from examples.checkout.server import CheckoutConfig, CheckoutServer, log


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or default


def _list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m examples.checkout",
        description=(
            "A sample shop checkout for decline-rescue: renders a Microform card form with a capture "
            "context from POST /capture-contexts and verifies the transient token it sends back with "
            "POST /transient-tokens/verify. The shop server holds the API credentials; the browser "
            "never does, and the card number never reaches this server."
        ),
        epilog=(
            "Authentication: IAM (ApiAuth=IAM, the stack's default) signs every call with SigV4 for "
            "execute-api as a principal holding CheckoutCallerPolicy, and sends the API key too; "
            "API_KEY sends the x-api-key header alone. Example, against `make local`: "
            "CHECKOUT_AWS_ACCESS_KEY_ID=AKIALOCALCHECKOUT001 "
            "CHECKOUT_AWS_SECRET_ACCESS_KEY=local-checkout-secret-0000000000000000001 "
            "python -m examples.checkout --api-url http://127.0.0.1:3000 "
            "--api-key local-api-key-decline-rescue-0001 --port 8085 "
            "(the stack must list the origin in CheckoutOrigins)"
        ),
    )
    p.add_argument(
        "--api-url",
        default=_env("CHECKOUT_API_URL"),
        help="the decline-rescue API's base URL, stage included (env CHECKOUT_API_URL), "
        "e.g. https://abc123.execute-api.us-east-1.amazonaws.com/prod",
    )
    p.add_argument(
        "--auth",
        choices=("IAM", "API_KEY"),
        default=_env("CHECKOUT_API_AUTH"),
        help="how the API wants to be called (env CHECKOUT_API_AUTH; default: IAM when an access key is given, "
        "else API_KEY)",
    )
    p.add_argument("--api-key", default=_env("CHECKOUT_API_KEY"), help="the x-api-key value (env CHECKOUT_API_KEY)")
    p.add_argument(
        "--access-key-id",
        default=_env("CHECKOUT_AWS_ACCESS_KEY_ID"),
        help="SigV4 access key id (env CHECKOUT_AWS_ACCESS_KEY_ID)",
    )
    p.add_argument(
        "--secret-access-key",
        default=_env("CHECKOUT_AWS_SECRET_ACCESS_KEY"),
        help="SigV4 secret access key (env CHECKOUT_AWS_SECRET_ACCESS_KEY; prefer the variable)",
    )
    p.add_argument(
        "--session-token",
        default=_env("CHECKOUT_AWS_SESSION_TOKEN"),
        help="SigV4 session token for temporary credentials (env CHECKOUT_AWS_SESSION_TOKEN)",
    )
    p.add_argument(
        "--region", default=_env("CHECKOUT_AWS_REGION", "us-east-1"), help="the API's region (env CHECKOUT_AWS_REGION)"
    )
    p.add_argument("--host", default=_env("CHECKOUT_HOST", "127.0.0.1"), help="address to listen on (127.0.0.1)")
    p.add_argument(
        "--port", type=int, default=int(_env("CHECKOUT_PORT", "8083") or 8083), help="port (env CHECKOUT_PORT, 8083)"
    )
    p.add_argument(
        "--origin",
        default=_env("CHECKOUT_ORIGINS"),
        help="the shop's public origin(s), comma-separated, the first the default: the capture context's "
        "targetOrigins (env CHECKOUT_ORIGINS; default http://<host>:<port>)",
    )
    p.add_argument(
        "--card-networks",
        default=_env("CHECKOUT_CARD_NETWORKS", "VISA,MASTERCARD,AMEX"),
        help="allowed card networks, comma-separated (env CHECKOUT_CARD_NETWORKS; VISA,MASTERCARD,AMEX)",
    )
    p.add_argument("--shop-name", default=_env("CHECKOUT_SHOP_NAME", "Sample shop"), help="the page's title")
    return p


def config_from(args: argparse.Namespace, p: argparse.ArgumentParser) -> CheckoutConfig:
    if not args.api_url:
        p.error("--api-url (or CHECKOUT_API_URL) is required")
    auth = args.auth or ("IAM" if args.access_key_id else "API_KEY")
    credentials = None
    if auth == "IAM":
        if not (args.access_key_id and args.secret_access_key):
            p.error("IAM needs --access-key-id and --secret-access-key (or CHECKOUT_AWS_* variables)")
        credentials = Credentials(args.access_key_id, args.secret_access_key, args.session_token, args.region)
    elif not args.api_key:
        p.error("API_KEY needs --api-key (or CHECKOUT_API_KEY)")
    origins = _list(args.origin or f"http://{args.host}:{args.port}")
    for origin in origins:
        if not origin.startswith(("https://", "http://")) or origin.count("/") != 2:
            p.error(f"an origin is scheme://host[:port], no path: {origin!r}")
    networks = [n.upper() for n in _list(args.card_networks)]
    api = DeclineRescueApi(args.api_url, api_key=args.api_key, credentials=credentials)
    return CheckoutConfig(api=api, origins=origins, card_networks=networks, shop_name=args.shop_name)


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    config = config_from(args, p)
    server = CheckoutServer(config, args.host, args.port)
    log(
        f"sample checkout on {server.url} for {', '.join(config.origins)}; API {config.api.base_url} "
        f"({config.api.auth}); card networks {', '.join(config.card_networks)}"
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
