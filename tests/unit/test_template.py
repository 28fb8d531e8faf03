"""What template.yaml must keep true: runtime and architecture, Powertools settings,
tracing, the API key on every route, the secret and a least-privilege policy."""

from __future__ import annotations

import re

import pytest

from devstack.template import ROOT, load_raw, translate

RAW = load_raw()
TRANSLATED, _ = translate(RAW, {})
RESOURCES = TRANSLATED["Resources"]
FUNCTIONS = {k: v for k, v in RESOURCES.items() if v["Type"] == "AWS::Lambda::Function"}


def test_globals_runtime_architecture_tracing():
    function = RAW["Globals"]["Function"]
    assert function["Runtime"] == "python3.13"
    assert function["Architectures"] == ["arm64"]
    assert function["Tracing"] == "Active"
    env = function["Environment"]["Variables"]
    assert env["POWERTOOLS_SERVICE_NAME"] == "decline-rescue"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "DeclineRescue"
    assert env["POWERTOOLS_LOGGER_LOG_EVENT"] == "false", "events may carry card data: never log them"


def test_layer_builds_for_arm64_python313():
    layer = RAW["Resources"]["SharedLayer"]
    # built by layers/shared/Makefile: pinned wheels for arm64 python3.13, compiled to .pyc
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_every_function_uses_the_layer_and_traces(logical_id):
    props = FUNCTIONS[logical_id]["Properties"]
    assert props["Architectures"] == ["arm64"] and props["Runtime"] == "python3.13"
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert props["Layers"]


WEBHOOK_ROUTE = ("/webhooks/flexfactor", "post")


def _resolved(parameters: dict[str, str]):
    from devstack.template import Resolver

    translated, _ = translate(RAW, parameters)
    resolver = Resolver(translated, parameters, "stack")
    resolver.physical_ids["CheckoutApi"] = "api1234567"
    return translated, resolver


@pytest.mark.parametrize(
    ("api_auth", "merchant_security"),
    [("IAM", [{"sigv4": [], "api_key": []}]), ("API_KEY", [{"api_key": []}])],
)
def test_every_route_but_the_webhook_needs_the_api_key_and_with_iam_a_signature(api_auth, merchant_security):
    translated, resolver = _resolved({"ApiAuth": api_auth})
    paths = translated["Resources"]["CheckoutApi"]["Properties"]["Body"]["paths"]
    routes = {(path, method) for path, methods in paths.items() for method in methods}
    assert routes == {
        ("/capture-contexts", "post"),
        ("/declines", "post"),
        ("/orders/{orderId}", "get"),
        ("/orders/{orderId}/capture", "post"),
        ("/orders/{orderId}/cancel", "post"),
        ("/orders/{orderId}/refund", "post"),
        ("/transient-tokens/verify", "post"),
        WEBHOOK_ROUTE,
    }
    for path, method in routes:
        spec = paths[path][method]
        security = resolver.resolve(spec.get("security", []))
        # FlexFactor sends neither: the HMAC signature authenticates the webhook
        assert security == ([] if (path, method) == WEBHOOK_ROUTE else merchant_security), f"{method} {path}"
        uri = spec["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
        assert "lambda:path/2015-03-31/functions/" in uri
    assert translated["Outputs"]["ApiAuth"]["Value"] == {"Ref": "ApiAuth"}


def test_the_caller_policies_split_checkout_from_money_movement():
    translated, resolver = _resolved({"ApiAuth": "IAM", "Stage": "prod"})

    def arns(logical_id: str) -> set[str]:
        resource = translated["Resources"][logical_id]
        assert resource["Condition"] == "UseIam"
        (statement,) = resolver.resolve(resource["Properties"]["PolicyDocument"])["Statement"]
        assert (statement["Effect"], statement["Action"]) == ("Allow", "execute-api:Invoke")
        prefix = "arn:aws:execute-api:us-east-1:123456789012:api1234567/prod/"
        return {arn.removeprefix(prefix) for arn in statement["Resource"]}

    checkout = {"POST/capture-contexts", "POST/transient-tokens/verify", "POST/declines", "GET/orders/*"}
    assert arns("CheckoutCallerPolicy") == checkout
    assert arns("OperationsCallerPolicy") == checkout | {
        "POST/orders/*/capture",
        "POST/orders/*/cancel",
        "POST/orders/*/refund",
    }


def test_the_capture_context_function_touches_only_transient_token_items():
    function = RAW["Resources"]["IssueCaptureContextFunction"]["Properties"]
    env = function["Environment"]["Variables"]
    assert env["CHECKOUT_ORIGINS"] == {"Ref": "CheckoutOrigins"}
    assert env["MICROFORM_CLIENT_VERSION"] == {"Ref": "MicroformClientVersion"}
    (statement,) = next(p for p in function["Policies"] if "Statement" in p)["Statement"]
    assert statement["Action"] == ["dynamodb:PutItem"]
    assert statement["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["TRANSIENT#*"]}}


@pytest.mark.parametrize(
    ("origins", "accepted"),
    [
        ("", True),
        ("https://shop.example", True),
        ("https://shop.example,http://localhost:8083,http://127.0.0.1:8083", True),
        ("https://shop.example/checkout", False),
        ("shop.example", False),
        ("https://shop.example, https://b.example", False),
        ("https://Shop.example", False),
    ],
)
def test_checkout_origins_parameter_takes_origins_only(origins, accepted):
    pattern = RAW["Parameters"]["CheckoutOrigins"]["AllowedPattern"]
    assert bool(re.fullmatch(pattern, origins)) is accepted


def test_pending_index_is_sparse_and_projects_what_the_poller_reads():
    table = RAW["Resources"]["OrdersTable"]["Properties"]
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "pending"
    assert [k["AttributeName"] for k in index["KeySchema"]] == ["pendingShard", "nextPollAt"]
    projected = set(index["Projection"]["NonKeyAttributes"])
    assert {"orderId", "orderSessionKey", "status", "version", "expiryDateUtc", "createdAt", "polls"} <= projected


def test_the_schedule_starts_the_dispatcher_and_workers_fan_out_from_the_poll_work_queue():
    schedules = [r for r in RESOURCES.values() if r["Type"] == "AWS::Scheduler::Schedule"]
    assert len(schedules) == 1
    assert schedules[0]["Properties"]["Target"]["Arn"] == {"Fn::GetAtt": ["DispatchPollsFunction", "Arn"]}
    assert schedules[0]["Properties"]["ScheduleExpression"] == {"Ref": "PollRate"}
    # the old single-run poller is gone: the worker has no schedule, only its queue
    (mapping,) = [
        r["Properties"]
        for r in RESOURCES.values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
        and r["Properties"]["FunctionName"] == {"Ref": "PollOrdersFunction"}
    ]
    assert mapping["BatchSize"] == 1
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "PollWorkers"}}
    assert RAW["Parameters"]["PollWorkers"]["MinValue"] == 2  # Lambda's floor for MaximumConcurrency
    # the dispatcher and every writer of pending orders share one shard count
    assert RAW["Globals"]["Function"]["Environment"]["Variables"]["PENDING_SHARDS"] == {"Ref": "PendingShards"}
    assert RAW["Parameters"]["PendingShards"]["MinValue"] == 8
    for function in ("DispatchPollsFunction", "PollOrdersFunction"):
        env = FUNCTIONS[function]["Properties"]["Environment"]["Variables"]
        assert env["POLL_WORK_QUEUE_URL"] == {"Ref": "PollWorkQueue"}, function
    # the dispatcher reads the breaker and nothing else of the table
    (table,) = [s for s in _statements("DispatchPollsFunction") if "dynamodb:GetItem" in _actions(s)]
    assert _actions(table) == ["dynamodb:GetItem"]
    assert table["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["POLLER#*"]}}
    dead = RAW["Resources"]["PollWorkDeadLetterAlarm"]["Properties"]["Dimensions"][0]["Value"]
    assert dead == {"Fn::GetAtt": ["PollWorkDeadLetterQueue", "QueueName"]}


@pytest.mark.parametrize(
    ("function", "queue", "dlq"),
    [
        ("EvaluateDeclineFunction", "DeclinesQueue", "DeclinesDeadLetterQueue"),
        ("ApplyOrderUpdateFunction", "OrderUpdatesQueue", "OrderUpdatesDeadLetterQueue"),
        ("PollOrdersFunction", "PollWorkQueue", "PollWorkDeadLetterQueue"),
    ],
)
def test_queue_consumers_report_partial_failures_and_queues_dead_letter(function, queue, dlq):
    mappings = [
        r["Properties"]
        for r in RESOURCES.values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping" and r["Properties"]["FunctionName"] == {"Ref": function}
    ]
    (mapping,) = mappings
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [queue, "Arn"]}
    props = RAW["Resources"][queue]["Properties"]
    assert props["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": [dlq, "Arn"]}
    timeout = FUNCTIONS[function]["Properties"]["Timeout"]
    assert props["VisibilityTimeout"] >= 6 * timeout, "Lambda's SQS guidance: six times the function timeout"


def test_secret_access_is_scoped_to_the_cybersource_secret():
    role = RESOURCES["IssueCaptureContextFunctionRole"]["Properties"]
    statements = [s for p in role.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
    secret_statements = [s for s in statements if "secretsmanager:GetSecretValue" in str(s["Action"])]
    assert secret_statements
    for statement in secret_statements:
        assert statement["Resource"] == {"Fn::Sub": ["${secretArn}", {"secretArn": {"Ref": "CybersourceSecret"}}]}


def test_capture_context_function_gets_its_settings_from_the_template():
    env = FUNCTIONS["IssueCaptureContextFunction"]["Properties"]["Environment"]["Variables"]
    assert env["CYBERSOURCE_SECRET_ID"] == {"Ref": "CybersourceSecret"}
    assert env["CYBERSOURCE_BASE_URL"] == {"Ref": "CybersourceBaseUrl"}
    timeout = FUNCTIONS["IssueCaptureContextFunction"]["Properties"]["Timeout"]
    budget_max = RAW["Parameters"]["ProviderBudgetSeconds"]["MaxValue"]
    assert budget_max <= timeout - 2, "the function must be able to answer 504 before Lambda kills it"


def test_tracer_does_not_capture_responses():
    """Responses may name what a caller sent; X-Ray must not keep them."""
    env = RAW["Globals"]["Function"]["Environment"]["Variables"]
    assert env["POWERTOOLS_TRACER_CAPTURE_RESPONSE"] == "false"


def _statements(function: str) -> list[dict]:
    role = RESOURCES[f"{function}Role"]["Properties"]
    return [s for p in role.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]


def _actions(statement: dict) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


def test_only_the_publisher_may_put_events_on_the_bus():
    # Given every function's role, When we list who may call PutEvents
    may_publish = sorted(
        function
        for function in FUNCTIONS
        if any("events:PutEvents" in _actions(s) for s in _statements(function))
        or any("EventBridge" in str(a) for a in RESOURCES[f"{function}Role"]["Properties"].get("ManagedPolicyArns", []))
    )
    # Then it is the stream's publisher alone, and no other function is told the bus's name
    assert may_publish == ["PublishOrderEventsFunction"]
    told = sorted(
        f
        for f, r in FUNCTIONS.items()
        if "EVENT_BUS_NAME" in r["Properties"].get("Environment", {}).get("Variables", {})
    )
    assert told == ["PublishOrderEventsFunction"]


def test_the_orders_stream_feeds_the_publisher_with_retries_bisect_and_a_failure_queue():
    # Given the orders table and the publisher's event source mapping
    stream = RAW["Resources"]["OrdersTable"]["Properties"]["StreamSpecification"]
    (mapping,) = [
        r["Properties"]
        for r in RESOURCES.values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
        and r["Properties"]["FunctionName"] == {"Ref": "PublishOrderEventsFunction"}
    ]
    # Then the stream carries new images, read from the oldest record, with bounded retries
    assert stream["StreamViewType"] in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES")
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["OrdersTable", "StreamArn"]}
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert 0 <= mapping["MaximumRetryAttempts"] <= 20
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["OrderEventsFailureQueue", "Arn"]
    }
    # And only applied changes' history items invoke it (they carry changeId)
    import json

    (pattern,) = [json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]]
    assert pattern == {"eventName": ["INSERT"], "dynamodb": {"NewImage": {"changeId": {"S": [{"exists": True}]}}}}
    # And what cannot be published raises an alarm
    alarm = RAW["Resources"]["OrderEventsFailureAlarm"]["Properties"]
    assert alarm["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["OrderEventsFailureQueue", "QueueName"]}


def test_the_poller_may_send_a_queued_decline_again():
    statements = _statements("PollOrdersFunction")
    sends = [s for s in statements if any(a.startswith("sqs:SendMessage") for a in _actions(s))]
    assert any("DeclinesQueue" in str(s["Resource"]) for s in sends)
    env = FUNCTIONS["PollOrdersFunction"]["Properties"]["Environment"]["Variables"]
    assert env["DECLINES_QUEUE_URL"] == {"Ref": "DeclinesQueue"}


def test_every_aws_call_ends_inside_every_function_timeout():
    """A call that retries past the function's timeout kills the invocation with work half
    done (a webhook kept but not queued, a claim without its answer): botocore's retries
    and timeouts are bounded so that the worst call ends with seconds to spare."""
    from decline_rescue.infra import aws

    shortest = min(int(f["Properties"].get("Timeout", 3)) for f in FUNCTIONS.values())
    assert shortest - 2 >= aws.WORST_CALL_SECONDS, (aws.WORST_CALL_SECONDS, shortest)


def test_whoever_writes_a_queued_order_knows_when_it_is_due():
    """evaluate_decline writes a QUEUED order's first nextPollAt; the poller reschedules
    it: both must be told the same QueuedResendSeconds."""
    for function in ("EvaluateDeclineFunction", "PollOrdersFunction"):
        env = FUNCTIONS[function]["Properties"]["Environment"]["Variables"]
        assert env["QUEUED_RESEND_SECONDS"] == {"Ref": "QueuedResendSeconds"}, function


# -- what a real deploy needs (issue 12) ------------------------------------------------


def _matches(name: str, value: str) -> bool:
    import re

    return re.fullmatch(RAW["Parameters"][name]["AllowedPattern"], value) is not None


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("rate(1 minute)", True),
        ("rate(5 minutes)", True),
        ("rate(2 hours)", True),
        ("rate(1 day)", True),
        ("cron(0/5 * * * ? *)", True),
        ("rate(0 minutes)", False),
        ("rate(1 minutes)", False),
        ("rate(5 minute)", False),
        ("rate(-1 minutes)", False),
        ("cron(* * *)", False),
        ("every minute", False),
    ],
)
def test_poll_rate_refuses_what_scheduler_would_refuse(value, ok):
    assert _matches("PollRate", value) is ok


@pytest.mark.parametrize("name", ["CybersourceBaseUrl", "FlexFactorBaseUrl"])
@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("https://apitest.cybersource.com", True),
        ("https://api-sandbox.flex-charge.com", True),
        ("http://127.0.0.1:8082", True),  # the local stack's emulators, on loopback only
        ("http://localhost:8081", True),
        ("http://api.flex-charge.com", False),
        ("http://10.0.0.5:8082", False),
        ("ftp://example.com", False),
    ],
)
def test_provider_urls_are_https_but_on_loopback(name, value, ok):
    assert _matches(name, value) is ok


def test_secrets_and_dead_letter_queues_outlive_the_stack():
    for logical_id in (
        "CybersourceSecret",
        "FlexFactorSecret",
        "DeclinesDeadLetterQueue",
        "OrderUpdatesDeadLetterQueue",
        "OrderEventsFailureQueue",
    ):
        resource = RAW["Resources"][logical_id]
        assert (resource["DeletionPolicy"], resource["UpdateReplacePolicy"]) == ("Retain", "Retain"), logical_id


def test_every_alarm_notifies_the_alarm_topic():
    alarms = {k: v for k, v in RAW["Resources"].items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    assert alarms
    action = [{"Fn::If": ["CreateAlarmTopic", {"Ref": "AlarmTopic"}, {"Ref": "AlarmTopicArn"}]}]
    for logical_id, alarm in alarms.items():
        assert alarm["Properties"]["AlarmActions"] == action, logical_id
        assert alarm["Properties"]["OKActions"] == action, logical_id
    assert RAW["Resources"]["AlarmTopic"]["Condition"] == "CreateAlarmTopic"


def test_each_function_logs_to_its_own_group_named_without_it():
    for logical_id, function in RAW["Resources"].items():
        if function["Type"] != "AWS::Serverless::Function":
            continue
        group = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        name = RAW["Resources"][group]["Properties"]["LogGroupName"]["Fn::Sub"]
        # named from the stack, not the function: no reference back, so the group exists
        # before the function's first invocation could create one of its own
        assert name.startswith("/aws/lambda/${AWS::StackName}/") and logical_id not in name


def test_the_schedule_is_named_by_cloudformation_not_by_its_logical_id():
    (schedule,) = [r for r in RESOURCES.values() if r["Type"] == "AWS::Scheduler::Schedule"]
    assert "Name" not in schedule["Properties"]  # a fixed name collides between two stacks


def test_the_webhook_function_touches_its_own_items_only():
    statements = [
        s
        for policy in RAW["Resources"]["IngestWebhookFunction"]["Properties"]["Policies"]
        if isinstance(policy, dict) and "Statement" in policy
        for s in policy["Statement"]
    ]
    (table,) = [s for s in statements if any(str(a).startswith("dynamodb:") for a in s["Action"])]
    assert table["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["WEBHOOK#*"]}}
    assert set(table["Action"]) == {"dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem"}


def test_no_setting_is_left_that_nothing_reads():
    text = (ROOT / "template.yaml").read_text()
    assert "IDEMPOTENCY_TABLE" not in text and "STAGE:" not in text


@pytest.mark.parametrize("env", ["default", "prod"])
def test_samconfig_deploys_pass_the_templates_own_constraints(env):
    import tomllib

    from devstack.parameters import parse_overrides, validate

    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    overrides = parse_overrides(config[env]["deploy"]["parameters"]["parameter_overrides"])
    assert overrides["ApiAuth"] == "IAM"
    validate(RAW["Parameters"], overrides)  # raises with CloudFormation's message when one is refused
    assert config[env]["deploy"]["parameters"]["capabilities"] == "CAPABILITY_IAM"  # (managed policies, roles)


# -- operate: the alarms and the dashboard (issue 13) ------------------------------------

ALARM_ACTION = [{"Fn::If": ["CreateAlarmTopic", {"Ref": "AlarmTopic"}, {"Ref": "AlarmTopicArn"}]}]
SERVICE = RAW["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
NAMESPACE = RAW["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]
PLACEHOLDER_STACK = "stack-x"


def _alarms() -> dict[str, dict]:
    return {k: v["Properties"] for k, v in RAW["Resources"].items() if v["Type"] == "AWS::CloudWatch::Alarm"}


def _alarm_metrics(props: dict) -> list[tuple[str, str, dict]]:
    """(namespace, metric name, {dimension: value}) of every metric an alarm reads."""
    if "MetricName" in props:
        metrics = [props]
    else:
        metrics = [q["MetricStat"]["Metric"] for q in props["Metrics"] if "MetricStat" in q]
    dims = [{d["Name"]: d["Value"] for d in q.get("Dimensions", ())} for q in metrics]
    return [(q["Namespace"], q["MetricName"], d) for q, d in zip(metrics, dims, strict=True)]


def test_every_alarm_pages_through_the_topic_with_a_runbook_line_and_every_dead_letter_queue_has_one():
    alarms = _alarms()
    for logical_id, props in alarms.items():
        assert props["AlarmActions"] == ALARM_ACTION and props["OKActions"] == ALARM_ACTION, logical_id
        assert len(props.get("AlarmDescription", "")) > 40, f"{logical_id}: say what it means and what to check"
    # every queue something dead-letters into: a queue's redrive target, a mapping's on-failure destination
    dead = {
        r["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for r in RAW["Resources"].values()
        if r["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" in r["Properties"]
    }
    dead |= {
        r["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
        for r in RESOURCES.values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping" and "DestinationConfig" in r["Properties"]
    }
    assert {"DeclinesDeadLetterQueue", "OrderUpdatesDeadLetterQueue", "OrderEventsFailureQueue"} <= dead
    not_empty = {
        dims["QueueName"]["Fn::GetAtt"][0]
        for props in alarms.values()
        for namespace, name, dims in _alarm_metrics(props)
        if (namespace, name) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
        and (props["Threshold"], props["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    }
    assert dead <= not_empty, dead - not_empty


def test_the_alarms_page_on_poller_lag_provider_errors_webhook_rejects_and_the_publisher():
    alarms = _alarms()

    def reading(namespace: str, name: str, **dims) -> list[str]:
        return sorted(
            k
            for k, props in alarms.items()
            if any(
                (n_s, n) == (namespace, name) and all(d.get(key) == value for key, value in dims.items())
                for n_s, n, d in _alarm_metrics(props)
            )
        )

    (lag,) = reading(NAMESPACE, "PollerLag")
    assert alarms[lag]["Threshold"] == {"Ref": "PollerLagAlarmSeconds"}
    assert RAW["Parameters"]["PollerLagAlarmSeconds"]["Type"] == "Number"
    for provider in ("flexfactor", "cybersource"):
        (rate,) = reading(NAMESPACE, "ProviderErrors", Provider=provider)
        props = alarms[rate]
        assert props["Threshold"] == {"Ref": "ProviderErrorRateAlarmPercent"}
        (returned,) = [q for q in props["Metrics"] if q.get("ReturnData")]
        assert "100 * failed / calls" in returned["Expression"]  # a rate, not a count
        stats = {q["Id"]: q["MetricStat"]["Stat"] for q in props["Metrics"] if "MetricStat" in q}
        assert stats == {"failed": "Sum", "calls": "SampleCount"}
    (rejects,) = reading(NAMESPACE, "WebhookRejected")
    assert alarms[rejects]["Threshold"] == {"Ref": "WebhookRejectsAlarmCount"}
    publisher = {"FunctionName": {"Ref": "PublishOrderEventsFunction"}}
    assert reading("AWS/Lambda", "Errors", **publisher) and reading("AWS/Lambda", "IteratorAge", **publisher)
    assert reading(
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        QueueName={"Fn::GetAtt": ["OrderEventsFailureQueue", "QueueName"]},
    )


def _dashboard() -> dict:
    """The dashboard's body, Fn::Sub'd with placeholders: pseudo parameters, parameters'
    defaults, ``<LogicalId>-ref`` for a resource's Ref and ``<LogicalId>-<Attr>`` for its
    attributes (each variable must name one that exists)."""
    import json
    import re

    (dashboard,) = [r for r in RAW["Resources"].values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    text = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    assert isinstance(text, str), "no Fn::Sub variables map: every name is a template's"
    pseudo = {"AWS::StackName": PLACEHOLDER_STACK, "AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012"}

    def value(match: re.Match) -> str:
        name = match.group(1)
        if name in pseudo:
            return pseudo[name]
        if name in RAW["Parameters"]:
            return str(RAW["Parameters"][name]["Default"])
        logical, _, attribute = name.partition(".")
        assert logical in RAW["Resources"], f"${{{name}}} names nothing in the template"
        return f"{logical}-{attribute or 'ref'}"

    return json.loads(re.sub(r"\$\{([^}]+)\}", value, text))


def _dashboard_metrics(body: dict) -> list[tuple[str, str, dict]]:
    """(namespace, metric name, {dimension: value}) of every metric a widget graphs, SEARCH
    expressions included (their schema's dimensions, valued "*" unless the search term names one)."""
    import re

    found = []
    for widget in body["widgets"]:
        for entry in widget["properties"].get("metrics", []):
            if isinstance(entry, dict):
                for schema, terms in re.findall(r"SEARCH\('\{([^}]*)\}([^']*)'", entry["expression"]):
                    namespace, *names = schema.split(",")
                    named = dict(re.findall(r'(\w+)="([^"]*)"', terms))
                    metric = named.pop("MetricName")
                    found.append((namespace, metric, {n: named.get(n, "*") for n in names}))
                continue
            fields = entry[:-1] if isinstance(entry[-1], dict) else entry
            namespace, name, *pairs = fields
            assert "..." not in pairs and len(pairs) % 2 == 0, entry
            found.append((namespace, name, dict(zip(pairs[::2], pairs[1::2], strict=True))))
    return found


def test_the_dashboard_is_json_and_shows_every_function_queue_and_alarm():
    body = _dashboard()
    graphed = {(ns, name, tuple(sorted(dims.items()))) for ns, name, dims in _dashboard_metrics(body)}
    functions = [k for k, r in RAW["Resources"].items() if r["Type"] == "AWS::Serverless::Function"]
    assert len(functions) >= 7
    for function in functions:
        for metric in ("Errors", "Throttles", "Duration"):
            assert ("AWS/Lambda", metric, (("FunctionName", f"{function}-ref"),)) in graphed, (function, metric)
    queues = [k for k, r in RAW["Resources"].items() if r["Type"] == "AWS::SQS::Queue"]
    assert len(queues) >= 5
    for queue in queues:
        for metric in ("ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"):
            assert ("AWS/SQS", metric, (("QueueName", f"{queue}-QueueName"),)) in graphed, (queue, metric)
    (alarm_widget,) = [w for w in body["widgets"] if w["type"] == "alarm"]
    assert sorted(alarm_widget["properties"]["alarms"]) == sorted(f"{a}-Arn" for a in _alarms())
    for name in ("DeclineReceived", "DeclineSubmitted", "OrdersResolved", "RescuedAmount", "TimeToResolution"):
        assert any(metric == name for _, metric, _ in graphed), name
    assert all(w["properties"].get("region", "eu-west-1") == "eu-west-1" for w in body["widgets"])


def test_every_metric_the_dashboard_and_alarms_read_is_one_the_code_emits():
    """Names from runtime/metric_names.py, with a dimension set the code prints them with
    (its DIMENSION_SETS for the recovery metrics, always with this stack's Stack; service
    alone for the function-wide counters): a misspelt name or dimension would graph and
    alarm on nothing, silently."""
    from decline_rescue.runtime import metric_names as m

    dimension_words = {m.SERVICE, m.STACK, m.PATH, m.OUTCOME, m.RULE, m.CURRENCY, m.REASON, m.PROVIDER}
    dimension_words |= {m.OPERATION, m.CIT, m.MIT}
    names = {v for k, v in vars(m).items() if k.isupper() and isinstance(v, str)} - dimension_words
    names |= set(m.ORDER_UPDATE.values()) | set(m.POLL_COUNTS.values())
    used = [("dashboard", *metric) for metric in _dashboard_metrics(_dashboard())]
    used += [(alarm, *metric) for alarm, props in _alarms().items() for metric in _alarm_metrics(props)]
    ours = [(where, name, dims) for where, namespace, name, dims in used if namespace == NAMESPACE]
    assert {name for _, name, _ in ours} >= {"PollerLag", "ProviderErrors", "WebhookRejected", "RescuedAmount"}
    for where, name, dims in ours:
        assert name in names, f"{where}: {name} is not in runtime/metric_names.py"
        assert dims.get("service") in (SERVICE, "*"), (where, name)  # ("*": a SEARCH's schema)
        rest = tuple(sorted(set(dims) - {"service", "Stack"}))
        if name not in m.DIMENSION_SETS:
            assert set(dims) == {"service"}, f"{where}: {name} is counted by service alone"
            continue
        emitted = {tuple(sorted(s)) for s in m.DIMENSION_SETS[name]}
        if set(dims) == {"service"}:
            assert m.SERVICE_ALONE in m.DIMENSION_SETS[name], (where, name)
            continue
        assert dims.get("Stack") in (PLACEHOLDER_STACK, {"Ref": "AWS::StackName"}), f"{where}: {name} of this stack"
        assert rest in emitted, f"{where}: {name} is not emitted by {rest}"
    assert {namespace for _, namespace, _, _ in used} == {NAMESPACE, "AWS/Lambda", "AWS/SQS"}
