"""``python -m devstack``: run the local stack in the foreground until Ctrl-C."""

from __future__ import annotations

import signal
import threading

from devstack.gateway import LOCAL_CALLERS
from devstack.ops import localstate
from devstack.stack import LocalStack, StackConfig


def main() -> None:
    config = StackConfig.from_env()
    # described in .local/stack.json while it runs: `decline-rescue --local` finds it there
    config.state_file = localstate.default_path()
    stack = LocalStack(config)
    print("starting the decline-rescue local stack ...", flush=True)
    stack.start()
    print("\ndecline-rescue local stack is up:\n" + stack.describe(), flush=True)
    sign = ""
    if stack.api_auth == "IAM":  # curl signs SigV4 itself (7.75+), as the checkout caller
        key, secret, _ = LOCAL_CALLERS["checkout"]
        sign = f" --aws-sigv4 'aws:amz:us-east-1:execute-api' --user '{key}:{secret}'"
    print(
        f"\ntry:\n  curl -s -X POST {stack.gateway_url}/capture-contexts "
        f"-H 'x-api-key: {config.api_key}'{sign}\n"
        f"  curl -s -X POST {stack.gateway_url}/declines -H 'x-api-key: {config.api_key}'{sign} "
        "-H 'Content-Type: application/json' --data @<(python3 -c "
        '\'import json; print(json.load(open("events/evaluate_decline/post_cit.json"))["body"])\')\n'
        + (
            f"\nthe sample checkout (examples/checkout): open {stack.checkout_url}/ in a browser and pay with "
            'a test card (README.md, "Sample checkout")\n'
            if stack.checkout_url
            else ""
        )
        + f"\noperate it: decline-rescue --local report (described in {config.state_file})\n"
        "\nCtrl-C to stop.\n",
        flush=True,
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    finally:
        print("stopping ...", flush=True)
        stack.stop()


if __name__ == "__main__":
    main()
