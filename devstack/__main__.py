"""``python -m devstack``: run the local stack in the foreground until Ctrl-C."""

from __future__ import annotations

import signal
import threading

from devstack.stack import LocalStack, StackConfig


def main() -> None:
    config = StackConfig.from_env()
    stack = LocalStack(config)
    print("starting the decline-rescue local stack ...", flush=True)
    stack.start()
    print("\ndecline-rescue local stack is up:\n" + stack.describe(), flush=True)
    print(
        f"\ntry:\n  curl -s -X POST {stack.gateway_url}/capture-contexts "
        f"-H 'x-api-key: {config.api_key}'\n"
        f"  curl -s -X POST {stack.gateway_url}/declines -H 'x-api-key: {config.api_key}' "
        "-H 'Content-Type: application/json' --data @<(python3 -c "
        '\'import json; print(json.load(open("events/evaluate_decline/post_cit.json"))["body"])\')\n'
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
