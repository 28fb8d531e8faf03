"""Create in moto what template.yaml declares, and describe what the local stack runs.

Infrastructure (tables, queues with their redrive policies, secrets, event buses) is
created through boto3 against the moto server; functions, API routes, event source
mappings (SQS queues and DynamoDB streams) and schedules are returned as specs for the
local runtimes to serve.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from devstack.template import ACCOUNT_ID, Resolver, load_raw, translate

logging.getLogger("samtranslator").setLevel(logging.ERROR)


@dataclass
class FunctionSpec:
    logical_id: str
    name: str
    handler: str
    code_dir: str
    layer_dirs: list[str]
    environment: dict[str, str]
    timeout: int
    memory: int
    runtime: str
    reserved_concurrency: int | None = None  # ReservedConcurrentExecutions, when the template sets it


@dataclass
class Route:
    method: str
    path: str  # API Gateway resource path, e.g. /orders/{orderId}
    function: str  # logical id
    api_key_required: bool
    iam_required: bool = False  # AWS_IAM authorization: a SigV4 signature allowed execute-api:Invoke

    def pattern(self) -> re.Pattern[str]:
        regex = re.sub(r"\\\{([A-Za-z0-9_]+)(?:\\\+)?\\\}", r"(?P<\1>[^/]+)", re.escape(self.path))
        return re.compile(f"^{regex}$")


@dataclass
class EventSourceMapping:
    """An ``AWS::Lambda::EventSourceMapping``: an SQS queue or a DynamoDB stream.

    The first five fields are what an SQS mapping has always had here; the rest default
    to AWS's defaults, so an SQS mapping is still built from those five alone.
    """

    function: str
    queue_arn: str  # "" for a stream mapping
    batch_size: int
    report_batch_item_failures: bool
    max_batching_window: int
    source: str = "sqs"  # the service of EventSourceArn: "sqs" or "dynamodb" (others are not run)
    stream_arn: str = ""  # "" for a queue mapping
    starting_position: str = "LATEST"  # streams: TRIM_HORIZON or LATEST
    filters: list[dict[str, Any]] = field(default_factory=list)  # FilterCriteria patterns, parsed; OR'ed
    bisect_on_error: bool = False
    max_retry_attempts: int = -1  # streams; -1: until the record expires
    max_record_age: int = -1  # streams, seconds; -1: until the record expires
    on_failure: str | None = None  # streams: the on-failure destination's ARN
    maximum_concurrency: int | None = None  # SQS: ScalingConfig.MaximumConcurrency


@dataclass
class Schedule:
    function: str
    expression: str
    input: str | None


@dataclass
class Stack:
    name: str
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    routes: list[Route] = field(default_factory=list)
    event_sources: list[EventSourceMapping] = field(default_factory=list)
    schedules: list[Schedule] = field(default_factory=list)
    physical_ids: dict[str, str] = field(default_factory=dict)
    attributes: dict[tuple[str, str], Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    # the template's AWS::IAM::ManagedPolicy documents (what a caller may be given), by logical id
    managed_policies: dict[str, dict[str, Any]] = field(default_factory=dict)


class Provisioner:
    def __init__(self, endpoint_url: str, stack_name: str, parameters: dict[str, Any], region: str = "us-east-1"):
        self.endpoint_url = endpoint_url
        self.stack_name = stack_name
        self.region = region
        self.parameters = parameters
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region
        )
        self._client = lambda service: session.client(service, endpoint_url=endpoint_url)

    def provision(self, template_path: Path | None = None) -> Stack:
        raw = load_raw(template_path) if template_path else load_raw()
        translated, code_dirs = translate(raw, self.parameters)
        resolver = Resolver(translated, self.parameters, self.stack_name, self.region)
        stack = Stack(self.stack_name, physical_ids=resolver.physical_ids, attributes=resolver.attributes)
        resources = translated["Resources"]

        creators = {
            "AWS::SecretsManager::Secret": self._secret,
            "AWS::DynamoDB::Table": self._table,
            "AWS::SQS::Queue": self._queue,
            "AWS::Events::EventBus": self._event_bus,
        }
        pending = [(lid, r) for lid, r in resources.items() if r["Type"] in creators]
        for _ in range(len(pending) + 1):  # dependency order by retrying what cannot resolve yet
            deferred = []
            for logical_id, resource in pending:
                if not self._wanted(resolver, resource):
                    continue
                try:
                    props = resolver.resolve(resource.get("Properties", {}))
                except KeyError:
                    deferred.append((logical_id, resource))
                    continue
                creators[resource["Type"]](logical_id, props, resolver)
            if not deferred:
                break
            pending = deferred
        else:
            raise RuntimeError(f"cannot resolve resources: {[lid for lid, _ in pending]}")

        layer_dirs = {}
        for logical_id, resource in resources.items():
            if resource["Type"] == "AWS::Lambda::LayerVersion":
                key = resource["Properties"]["Content"]["S3Key"]
                layer_dirs[logical_id] = code_dirs[key.removesuffix(".zip")]
                resolver.physical_ids[logical_id] = f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:layer:{logical_id}:1"
            if resource["Type"] == "AWS::Lambda::Function":
                name = resource["Properties"].get("FunctionName") or f"{self.stack_name}-{logical_id}"
                resolver.physical_ids[logical_id] = name
                resolver.attributes[(logical_id, "Arn")] = f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{name}"
        arn_to_layer = {resolver.physical_ids[k]: v for k, v in layer_dirs.items()}
        for logical_id, resource in resources.items():
            if resource["Type"] == "AWS::ApiGateway::RestApi":
                resolver.physical_ids[logical_id] = LOCAL_API_ID  # the local gateway's id

        for logical_id, resource in resources.items():
            kind = resource["Type"]
            if kind == "AWS::Lambda::Function":
                wanted = (
                    "Handler",
                    "Environment",
                    "Layers",
                    "Timeout",
                    "MemorySize",
                    "Runtime",
                    "ReservedConcurrentExecutions",
                )
                props = resolver.resolve({k: v for k, v in resource["Properties"].items() if k in wanted})
                stack.functions[logical_id] = FunctionSpec(
                    logical_id=logical_id,
                    name=resolver.physical_ids[logical_id],
                    handler=props["Handler"],
                    code_dir=code_dirs[logical_id],
                    layer_dirs=[arn_to_layer[a] for a in props.get("Layers", []) if a in arn_to_layer],
                    environment={
                        k: "" if v is None else str(v)
                        for k, v in props.get("Environment", {}).get("Variables", {}).items()
                    },
                    timeout=int(props.get("Timeout", 3)),
                    memory=int(props.get("MemorySize", 128)),
                    runtime=props.get("Runtime", ""),
                    reserved_concurrency=(
                        int(props["ReservedConcurrentExecutions"])
                        if props.get("ReservedConcurrentExecutions") is not None
                        else None
                    ),
                )
            elif kind == "AWS::ApiGateway::RestApi":
                stack.routes.extend(self._routes(resource, resolver))
            elif kind == "AWS::IAM::ManagedPolicy" and self._wanted(resolver, resource):
                stack.managed_policies[logical_id] = resolver.resolve(resource["Properties"]["PolicyDocument"])
            elif kind == "AWS::Lambda::EventSourceMapping":
                props = resolver.resolve({k: v for k, v in resource["Properties"].items() if k != "FunctionName"})
                function = _function_logical_id(resource["Properties"]["FunctionName"])
                stack.event_sources.append(_event_source_mapping(function, props))
            elif kind == "AWS::Scheduler::Schedule":
                props = resource["Properties"]
                stack.schedules.append(
                    Schedule(
                        function=_function_logical_id(props["Target"]["Arn"]),
                        expression=resolver.resolve(props["ScheduleExpression"]),
                        input=resolver.resolve(props["Target"].get("Input")),
                    )
                )
        for name, output in translated.get("Outputs", {}).items():
            try:
                stack.outputs[name] = resolver.resolve(output["Value"])
            except KeyError:
                continue
        return stack

    # -- resources ------------------------------------------------------------------

    @staticmethod
    def _wanted(resolver: Resolver, resource: dict[str, Any]) -> bool:
        condition = resource.get("Condition")
        return True if condition is None else resolver.condition(condition)

    def _secret(self, logical_id: str, props: dict[str, Any], resolver: Resolver) -> None:
        client = self._client("secretsmanager")
        value = props.get("SecretString")
        if value is None:
            value = _generated_secret(props.get("GenerateSecretString", {}))
        name = props.get("Name") or f"{self.stack_name}-{logical_id}"
        try:
            arn = client.create_secret(Name=name, SecretString=value)["ARN"]
        except client.exceptions.ResourceExistsException:
            arn = client.describe_secret(SecretId=name)["ARN"]
        resolver.physical_ids[logical_id] = arn
        resolver.attributes[(logical_id, "Id")] = arn

    def _table(self, logical_id: str, props: dict[str, Any], resolver: Resolver) -> None:
        client = self._client("dynamodb")
        name = props.get("TableName") or f"{self.stack_name}-{logical_id}"
        args: dict[str, Any] = {
            "TableName": name,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": props.get("BillingMode", "PROVISIONED"),
        }
        if args["BillingMode"] == "PROVISIONED":
            args["ProvisionedThroughput"] = props.get(
                "ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
            )
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if props.get(key):
                args[key] = props[key]
        if props.get("StreamSpecification"):  # CloudFormation's has no StreamEnabled: the API's needs it
            args["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
        try:
            desc = client.create_table(**args)["TableDescription"]
        except client.exceptions.ResourceInUseException:
            desc = client.describe_table(TableName=name)["Table"]
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            client.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        resolver.physical_ids[logical_id] = name
        resolver.attributes[(logical_id, "Arn")] = desc["TableArn"]
        if desc.get("LatestStreamArn"):
            resolver.attributes[(logical_id, "StreamArn")] = desc["LatestStreamArn"]

    def _queue(self, logical_id: str, props: dict[str, Any], resolver: Resolver) -> None:
        client = self._client("sqs")
        name = props.get("QueueName") or f"{self.stack_name}-{logical_id}"
        attributes = {}
        for key in (
            "VisibilityTimeout",
            "MessageRetentionPeriod",
            "DelaySeconds",
            "MaximumMessageSize",
            "ReceiveMessageWaitTimeSeconds",
            "FifoQueue",
            "ContentBasedDeduplication",
        ):
            if key in props:
                attributes[key] = str(props[key]).lower() if isinstance(props[key], bool) else str(props[key])
        if "RedrivePolicy" in props:
            attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
        url = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        resolver.physical_ids[logical_id] = url
        resolver.attributes[(logical_id, "Arn")] = arn
        resolver.attributes[(logical_id, "QueueName")] = name
        resolver.attributes[(logical_id, "QueueUrl")] = url

    def _event_bus(self, logical_id: str, props: dict[str, Any], resolver: Resolver) -> None:
        client = self._client("events")
        name = props["Name"]
        try:
            arn = client.create_event_bus(Name=name)["EventBusArn"]
        except client.exceptions.ResourceAlreadyExistsException:
            arn = client.describe_event_bus(Name=name)["Arn"]
        resolver.physical_ids[logical_id] = name
        resolver.attributes[(logical_id, "Arn")] = arn
        resolver.attributes[(logical_id, "Name")] = name

    @staticmethod
    def _routes(resource: dict[str, Any], resolver: Resolver) -> list[Route]:
        body = resource["Properties"].get("Body", {})
        routes = []
        for path, methods in body.get("paths", {}).items():
            for method, spec in methods.items():
                integration = spec.get("x-amazon-apigateway-integration", {})
                uri = integration.get("uri", {})
                text = uri.get("Fn::Sub", "") if isinstance(uri, dict) else str(uri)
                match = re.search(r"\$\{([A-Za-z0-9]+)\.Arn\}", text if isinstance(text, str) else text[0])
                if not match:
                    continue
                security = resolver.resolve(spec.get("security", []))  # (Fn::If on ApiAuth)
                routes.append(
                    Route(
                        method=method.upper(),
                        path=path,
                        function=match.group(1),
                        api_key_required=any("api_key" in s for s in security),
                        iam_required=any("sigv4" in s for s in security),
                    )
                )
        return routes


LOCAL_API_ID = "localapi01"


def _function_logical_id(value: Any) -> str:
    if isinstance(value, dict):
        if "Ref" in value:
            return value["Ref"]
        if "Fn::GetAtt" in value:
            return value["Fn::GetAtt"][0]
    raise ValueError(f"cannot tell the function of {value!r}")


def _event_source_mapping(function: str, props: dict[str, Any]) -> EventSourceMapping:
    arn = props["EventSourceArn"]
    source = arn.split(":")[2]
    stream = source == "dynamodb"
    patterns = [f["Pattern"] for f in props.get("FilterCriteria", {}).get("Filters", [])]
    return EventSourceMapping(
        function=function,
        queue_arn=arn if source == "sqs" else "",
        batch_size=int(props.get("BatchSize", 100 if stream else 10)),
        report_batch_item_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
        max_batching_window=int(props.get("MaximumBatchingWindowInSeconds", 0)),
        source=source,
        stream_arn=arn if stream else "",
        starting_position=props.get("StartingPosition", "LATEST"),
        filters=[p if isinstance(p, dict) else json.loads(p) for p in patterns],
        bisect_on_error=bool(props.get("BisectBatchOnFunctionError", False)),
        max_retry_attempts=int(props.get("MaximumRetryAttempts", -1)),
        max_record_age=int(props.get("MaximumRecordAgeInSeconds", -1)),
        on_failure=props.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination"),
        maximum_concurrency=(
            int(props["ScalingConfig"]["MaximumConcurrency"])
            if props.get("ScalingConfig", {}).get("MaximumConcurrency") is not None
            else None
        ),
    )


def _generated_secret(spec: dict[str, Any]) -> str:
    alphabet = string.ascii_letters + string.digits
    generated = "".join(secrets.choice(alphabet) for _ in range(int(spec.get("PasswordLength", 32))))
    template = spec.get("SecretStringTemplate")
    if template and spec.get("GenerateStringKey"):
        value = json.loads(template)
        value[spec["GenerateStringKey"]] = generated
        return json.dumps(value)
    return generated
