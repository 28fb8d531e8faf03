"""``python -m devstack.emulators.flexfactor [--port N ...]``: serve the emulator in the
foreground until interrupted (the local stack and the benchmarks start it so)."""

from __future__ import annotations

import argparse

from devstack.emulators.base import serve_forever
from devstack.emulators.flexfactor.app import FlexFactorEmulator
from devstack.emulators.flexfactor.auth import DEFAULT_APP_KEY, DEFAULT_APP_SECRET, DEFAULT_TOKEN_TTL
from devstack.emulators.flexfactor.orders import DEFAULT_CAPTURE_WINDOW, DEFAULT_STEP_SECONDS
from devstack.emulators.flexfactor.responses import DEFAULT_ERROR_SHAPE, ERROR_SHAPES
from devstack.emulators.flexfactor.webhooks import DEFAULT_WEBHOOK_KEY


def main() -> None:
    parser = argparse.ArgumentParser(description="FlexFactor decline-rescue API emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--app-key", default=DEFAULT_APP_KEY)
    parser.add_argument("--app-secret", default=DEFAULT_APP_SECRET)
    parser.add_argument("--token-ttl", type=float, default=DEFAULT_TOKEN_TTL, help="access token lifetime, seconds")
    parser.add_argument("--step-seconds", type=float, default=DEFAULT_STEP_SECONDS, help="one lifecycle step")
    parser.add_argument("--capture-window", type=float, default=DEFAULT_CAPTURE_WINDOW, help="seconds before a void")
    parser.add_argument("--webhook-url", default=None, help="where webhooks go (none are sent without it)")
    parser.add_argument("--webhook-key", default=DEFAULT_WEBHOOK_KEY, help="base64 subscriber key")
    parser.add_argument(
        "--error-shape", choices=ERROR_SHAPES, default=DEFAULT_ERROR_SHAPE, help="how a 400 for bad fields looks"
    )
    args = parser.parse_args()
    emulator = FlexFactorEmulator(
        app_key=args.app_key,
        app_secret=args.app_secret,
        token_ttl_seconds=args.token_ttl,
        step_seconds=args.step_seconds,
        capture_window_seconds=args.capture_window,
        webhook_url=args.webhook_url,
        webhook_key=args.webhook_key,
        error_shape=args.error_shape,
    )
    serve_forever(emulator, args.host, args.port)


if __name__ == "__main__":
    main()
