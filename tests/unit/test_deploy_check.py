"""``make deploy-check``'s pieces on small synthetic templates (not template.yaml, which
other work changes): the physical-name collision finder, and the built layer's checks on
a fake layer directory."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from devstack import deploy_check
from devstack.deploy_check import check_names, collisions, physical_names, verify_layer

STACKS = ("decline-rescue-dev", "decline-rescue-prod")


def _function(**events) -> dict:
    return {
        "Type": "AWS::Serverless::Function",
        "Properties": {
            "Runtime": "python3.13",
            "Handler": "app.lambda_handler",
            "CodeUri": "functions/poll_orders/",
            "Events": events,
        },
    }


def _sam(resources: dict, **extra) -> dict:
    return {"Transform": "AWS::Serverless-2016-10-31", "Resources": resources, **extra}


def _schedule(**properties) -> dict:
    return {"Type": "ScheduleV2", "Properties": {"ScheduleExpression": "rate(1 minute)", **properties}}


def _clashes(template: dict) -> list[tuple[str, str, str]]:
    _, found, unresolved = check_names(template, STACKS, "us-east-1")
    assert unresolved == []
    return [(a.type, a.where, b.where) for a, b in found]


def test_a_schedule_named_after_its_logical_id_collides_between_two_stacks():
    template = _sam({"PollFunction": _function(Tick=_schedule())})
    assert _clashes(template) == [
        ("AWS::Scheduler::Schedule", "decline-rescue-dev/PollFunctionTick", "decline-rescue-prod/PollFunctionTick")
    ]


def test_omit_name_lets_cloudformation_name_the_schedule():
    template = _sam({"PollFunction": _function(Tick=_schedule(OmitName=True))})
    names, found, _ = check_names(template, STACKS, "us-east-1")
    assert found == []
    assert [n for n in names if n.type == "AWS::Scheduler::Schedule"] == []


def test_a_schedule_name_with_the_stack_name_does_not_collide():
    template = _sam({"PollFunction": _function(Tick=_schedule(Name={"Fn::Sub": "${AWS::StackName}-tick"}))})
    names, found, _ = check_names(template, STACKS, "us-east-1")
    assert found == []
    assert sorted(n.name for n in names) == ["decline-rescue-dev-tick", "decline-rescue-prod-tick"]


def test_schedule_names_are_unique_per_schedule_group():
    template = _sam({"PollFunction": _function(Tick=_schedule(GroupName={"Fn::Sub": "${AWS::StackName}-schedules"}))})
    assert _clashes(template) == []


def test_names_with_the_stack_name_region_and_account_do_not_collide():
    resources = {
        "Bus": {"Type": "AWS::Events::EventBus", "Properties": {"Name": {"Fn::Sub": "${AWS::StackName}-orders"}}},
        "Secret": {"Type": "AWS::SecretsManager::Secret", "Properties": {"Name": {"Fn::Sub": "${AWS::StackName}/x"}}},
        "Table": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {"TableName": {"Fn::Join": ["-", [{"Ref": "AWS::StackName"}, "orders"]]}},
        },
        "Bucket": {
            "Type": "AWS::S3::Bucket",
            "Properties": {"BucketName": {"Fn::Sub": "${AWS::StackName}-${AWS::AccountId}-${AWS::Region}"}},
        },
        # a name made of a resource CloudFormation names (unique per stack)
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {}},
        "Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": {"Fn::Sub": "/q/${Queue.QueueName}"}}},
    }
    names, found, unresolved = check_names({"Resources": resources}, STACKS, "eu-west-1")
    assert found == [] and unresolved == []
    dev = {n.logical_id: n.name for n in names if n.stack == STACKS[0]}
    assert dev["Bus"] == dev["Table"] == "decline-rescue-dev-orders"  # another type: another scope
    assert dev["Secret"] == "decline-rescue-dev/x"
    assert dev["Bucket"] == "decline-rescue-dev-123456789012-eu-west-1"
    assert dev["Logs"].startswith("/q/{decline-rescue-dev.Queue.QueueName")


def test_fixed_names_collide_and_each_pair_is_listed():
    resources = {
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "orders"}},
        "Role": {"Type": "AWS::IAM::Role", "Properties": {"RoleName": {"Fn::Sub": "poller-${AWS::Region}"}}},
        # a parameter's default: the same in both stacks
        "Secret": {"Type": "AWS::SecretsManager::Secret", "Properties": {"Name": {"Ref": "SecretName"}}},
    }
    template = {"Parameters": {"SecretName": {"Type": "String", "Default": "shared"}}, "Resources": resources}
    assert sorted(_clashes(template)) == [
        ("AWS::IAM::Role", "decline-rescue-dev/Role", "decline-rescue-prod/Role"),
        ("AWS::SQS::Queue", "decline-rescue-dev/Queue", "decline-rescue-prod/Queue"),
        ("AWS::SecretsManager::Secret", "decline-rescue-dev/Secret", "decline-rescue-prod/Secret"),
    ]


def test_a_name_made_of_a_fixed_name_declared_further_down_collides():
    resources = {
        "Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": {"Fn::Sub": "/q/${Queue.QueueName}"}}},
        "Alarm": {"Type": "AWS::CloudWatch::Alarm", "Properties": {"AlarmName": {"Fn::Sub": "${Queue}-depth"}}},
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "orders"}},
    }
    assert sorted(t for t, _, _ in _clashes({"Resources": resources})) == [
        "AWS::CloudWatch::Alarm",
        "AWS::Logs::LogGroup",
        "AWS::SQS::Queue",
    ]


def test_parameter_overrides_per_stack_are_honoured():
    template = {
        "Parameters": {"Stage": {"Type": "String", "Default": "dev"}},
        "Resources": {"Q": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Fn::Sub": "orders-${Stage}"}}}},
    }
    _, found, _ = check_names(template, STACKS, "us-east-1", {STACKS[1]: {"Stage": "prod"}})
    assert found == []
    _, found, _ = check_names(template, STACKS, "us-east-1")
    assert len(found) == 1


def test_a_resource_whose_condition_is_false_claims_no_name():
    template = {
        "Parameters": {"Alarms": {"Type": "String", "Default": "no"}},
        "Conditions": {"WithAlarms": {"Fn::Equals": [{"Ref": "Alarms"}, "yes"]}},
        "Resources": {
            "Alarm": {"Type": "AWS::CloudWatch::Alarm", "Condition": "WithAlarms", "Properties": {"AlarmName": "a"}}
        },
    }
    assert _clashes(template) == []


def test_the_same_name_in_different_scopes_does_not_collide():
    resources = {
        # a queue and a topic may share a name; a rule's name is unique per event bus
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "x"}},
        "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "x"}},
        "Rule": {
            "Type": "AWS::Events::Rule",
            "Properties": {"Name": "r", "EventBusName": {"Fn::Sub": "${AWS::StackName}-bus"}},
        },
    }
    names, _ = physical_names({"Resources": resources}, "one", "us-east-1")
    assert collisions(names) == [] and len(names) == 3
    # across two stacks: the queue and the topic collide, the rules (each on its stack's bus) do not
    assert sorted(t for t, _, _ in _clashes({"Resources": resources})) == ["AWS::SNS::Topic", "AWS::SQS::Queue"]


def test_iam_names_are_case_insensitive_and_account_wide():
    dev, _ = physical_names(
        {"Resources": {"R": {"Type": "AWS::IAM::Role", "Properties": {"RoleName": "Poller"}}}}, "dev", "us-east-1"
    )
    prod, _ = physical_names(
        {"Resources": {"R": {"Type": "AWS::IAM::Role", "Properties": {"RoleName": "poller"}}}}, "prod", "eu-west-1"
    )
    assert len(collisions(dev + prod)) == 1


def test_an_unresolvable_name_is_reported_not_guessed():
    template = {
        "Resources": {"Q": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Fn::ImportValue": "shared"}}}}
    }
    names, found, unresolved = check_names(template, STACKS, "us-east-1")
    assert names == [] and found == []
    assert len(unresolved) == 2


# -- the built layer ------------------------------------------------------------------------


def _elf(machine: int) -> bytes:
    return b"\x7fELF\x02\x01\x01" + b"\x00" * 11 + struct.pack("<H", machine) + b"\x00" * 40


def _pyc(source: Path, flags: int = 0b01) -> None:
    cache = source.parent / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / f"{source.stem}.cpython-313.pyc").write_bytes(deploy_check.MAGIC_313 + struct.pack("<I", flags) + b"0" * 8)


def _fake_layer(
    root: Path, *, so_machine: int = 183, compile_all: bool = True, tag: str = "cp313-cp313-manylinux2014_aarch64"
) -> Path:
    python = root / "SharedLayer" / "python"
    (python / "decline_rescue").mkdir(parents=True)
    (python / "decline_rescue" / "__init__.py").write_text("")
    (python / "pkg").mkdir()
    (python / "pkg" / "__init__.py").write_text("")
    (python / "pkg" / "_speedups.cpython-313-aarch64-linux-gnu.so").write_bytes(_elf(so_machine))
    dist = python / "pkg-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n\nbody\n")
    (dist / "WHEEL").write_text(f"Wheel-Version: 1.0\nTag: {tag}\n")
    for source in python.rglob("*.py"):
        if compile_all:
            _pyc(source)
    return root / "SharedLayer"


def test_a_good_layer_passes(tmp_path):
    report = verify_layer(_fake_layer(tmp_path), {"pkg": "1.0"})
    assert report.problems == []
    assert report.size > 0


def test_an_x86_64_shared_object_fails(tmp_path):
    report = verify_layer(_fake_layer(tmp_path, so_machine=62), {"pkg": "1.0"})
    assert any("x86_64" in p for p in report.problems)


def test_an_x86_64_wheel_fails(tmp_path):
    report = verify_layer(_fake_layer(tmp_path, tag="cp313-cp313-manylinux2014_x86_64"), {"pkg": "1.0"})
    assert any("pkg-1.0.dist-info" in p for p in report.problems)


def test_a_module_without_bytecode_fails(tmp_path):
    report = verify_layer(_fake_layer(tmp_path, compile_all=False), {"pkg": "1.0"})
    assert any(p.startswith("no .pyc for") and "decline_rescue/__init__.py" in p for p in report.problems)


def test_timestamp_bytecode_fails(tmp_path):
    layer = _fake_layer(tmp_path)
    _pyc(layer / "python" / "pkg" / "__init__.py", flags=0)  # what pip or a plain compileall writes
    report = verify_layer(layer, {"pkg": "1.0"})
    assert any("unchecked-hash" in p for p in report.problems)


@pytest.mark.parametrize(
    ("pins", "expected"),
    [
        ({"pkg": "2.0"}, "pkg is 1.0 in the layer, pinned 2.0"),
        ({}, "pkg 1.0 is in the layer but not pinned"),
        ({"pkg": "1.0", "boto3": "1.0"}, "boto3==1.0 is pinned but not in the layer"),
    ],
)
def test_pins_must_match(tmp_path, pins, expected):
    report = verify_layer(_fake_layer(tmp_path), pins)
    assert any(expected in p for p in report.problems), report.problems
