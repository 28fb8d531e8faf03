"""The local stack's sample checkout without a browser: served with the stack, asking the
API with the stack's authentication mode (here ``ApiAuth=API_KEY``: the API key alone; the
browser tests run the default, SigV4), for the origins the stack's CheckoutOrigins lists."""

from __future__ import annotations

import json
import re

import httpx

from devstack.stack import LocalStack, StackConfig


def test_the_checkout_with_api_key_auth_gets_contexts_for_its_origins(tmp_path):
    config = StackConfig.ephemeral(echo_logs=False, log_file=tmp_path / "stack.log", parameters={"ApiAuth": "API_KEY"})
    with LocalStack(config) as stack:
        assert stack.api_auth == "API_KEY"
        port = config.checkout_port
        assert stack.checkout_url == f"http://127.0.0.1:{port}"
        assert stack.parameters.effective["CheckoutOrigins"] == f"http://127.0.0.1:{port},http://localhost:{port}"
        assert f"checkout      {stack.checkout_url}/" in stack.describe()
        assert stack.state()["endpoints"]["checkout"] == stack.checkout_url

        page = httpx.get(stack.checkout_url + "/", timeout=30)
        config_json = re.search(r'<script id="checkout-config" type="application/json">(.*?)</script>', page.text)
        paid = httpx.post(
            stack.checkout_url + "/pay",
            json={"sessionId": json.loads(config_json.group(1))["sessionId"], "transientToken": "a.b.c"},
            timeout=30,
        )

    assert page.status_code == 200, page.text
    assert 'integrity="sha384-' in page.text
    # the API itself refused the token (not API Gateway's 403): the shop got through
    assert paid.status_code in (400, 422), paid.text
    assert paid.json()["error"]["code"] != "HTTP_403"
    log = (tmp_path / "stack.log").read_text()
    assert "[checkout]" in log and "(API_KEY)" in log
