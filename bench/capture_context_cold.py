"""A fresh process importing a function's handler and serving its first event, timed from
the top of the script (``bench.capture_context``'s cold figure; the SDK's counterpart is
``bench/capture_context_sdk.py``). The environment is the function's (the caller sets it);
PYTHONPATH holds the layer and the function, as /opt/python and /var/task do on Lambda.

    python bench/capture_context_cold.py FUNCTION_DIR EVENT.json

Prints one JSON line: ``{"import_s", "first_s", "status"}`` (``first_s`` counts from the
top of the script, so it includes the import).
"""

import time

STARTED = time.perf_counter()

import importlib.util  # noqa: E402 - the clock starts before any import
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import uuid  # noqa: E402


class Context:
    """What Lambda's context object offers (devstack.runtime.LambdaContext, inlined)."""

    def __init__(self, name: str, memory: int, timeout: int) -> None:
        self.function_name = name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
        self.memory_limit_in_mb = memory
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = f"local/{self.aws_request_id}"
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def main() -> int:
    code_dir, event_path = sys.argv[1], sys.argv[2]
    out = sys.stdout
    sys.stdout = open(os.devnull, "w")  # the function's logs and metrics (Lambda's stdout)  # noqa: SIM115
    spec = importlib.util.spec_from_file_location("app", os.path.join(code_dir, "app.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    imported = time.perf_counter() - STARTED
    with open(event_path) as f:
        event = json.load(f)
    name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "bench")
    memory = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", 512))
    result = module.lambda_handler(event, Context(name, memory, 30))
    first = time.perf_counter() - STARTED
    print(json.dumps({"import_s": imported, "first_s": first, "status": result.get("statusCode")}), file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
