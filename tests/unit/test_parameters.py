"""PARAMETER_OVERRIDES as sam deploy reads it, and template parameters checked as
CloudFormation checks them (its messages, word for word)."""

from __future__ import annotations

import pytest

from devstack.parameters import (
    ParameterError,
    check_value,
    default_of,
    overrides_from_env,
    parse_overrides,
    resolve,
    validate,
)
from devstack.stack import LocalStack, StackConfig
from devstack.template import load_raw

# -- the parser ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("   \n\t ", {}),
        ("Key=Value", {"Key": "Value"}),
        ("A=1 B=2", {"A": "1", "B": "2"}),
        ("  A=1 \t B=2\nC=3  ", {"A": "1", "B": "2", "C": "3"}),
        # sam deploy --parameter-overrides' other form, alone and mixed with the short one
        ("ParameterKey=K,ParameterValue=V", {"K": "V"}),
        ("ParameterKey=K,ParameterValue=V ParameterKey=K2,ParameterValue=W", {"K": "V", "K2": "W"}),
        ("A=1 ParameterKey=B,ParameterValue=2 C=3", {"A": "1", "B": "2", "C": "3"}),
        ('ParameterKey=K,ParameterValue="a b"', {"K": "a b"}),
        # quoting: spaces inside quotes, either quote, escapes sam unescapes
        ('Key="a b"', {"Key": "a b"}),
        ("Key='a b'", {"Key": "a b"}),
        ('Key="a b" Other=c', {"Key": "a b", "Other": "c"}),
        ('Key="say \\"hi\\""', {"Key": 'say "hi"'}),
        ("Key='it\\'s'", {"Key": "it's"}),
        ('Key="it\'s"', {"Key": "it's"}),
        ("Key=it's", {"Key": "it's"}),
        ("Key=a\\ b", {"Key": "a b"}),
        ('Key=""', {"Key": ""}),
        ("Key=''", {"Key": ""}),
        ('"Key"=v', {"Key": "v"}),
        # a value keeps '=' and ',' (a CommaDelimitedList) and backslashes sam does not unescape
        ("Key=a=b", {"Key": "a=b"}),
        ("List=a,b,c", {"List": "a,b,c"}),
        ('Pattern="^\\d+$"', {"Pattern": "^\\d+$"}),
        ("PollRate='rate(5 minutes)'", {"PollRate": "rate(5 minutes)"}),
        # a repeated key: the last wins, as in sam
        ("A=1 A=2", {"A": "2"}),
    ],
)
def test_parse_overrides(text, expected):
    assert parse_overrides(text) == expected


@pytest.mark.parametrize(
    ("text", "shown", "hint"),
    [
        ("garbage", "garbage (at character 1)", " (no '=')"),
        ("A=1 garbage", "garbage (at character 5)", " (no '=')"),
        ("A=", "A= (at character 1)", ""),
        ("=v", "=v (at character 1)", ""),
        ("A-b=1", "A-b=1 (at character 1)", ""),
        ('A="open', 'A="open (at character 1)', " (a quote is not closed)"),
        ('A="a b', 'A="a (at character 1)', " (a quote is not closed)"),
        ("A='open", "A='open (at character 1)", " (a quote is not closed)"),
        ('A="a"b', 'A="a"b (at character 1)', ""),
        ("ParameterKey=K", "ParameterKey=K (at character 1)", ""),
        ("ParameterKey=K,ParameterValue=", "ParameterKey=K,ParameterValue= (at character 1)", ""),
        ("A=1,B=2 C", "C (at character 9)", " (no '=')"),
    ],
)
def test_parse_overrides_refuses_what_it_cannot_read(text, shown, hint):
    with pytest.raises(ParameterError) as raised:
        parse_overrides(text)
    assert str(raised.value) == (
        f"{shown} is not a valid format{hint}. It must look something like "
        "'ParameterKey=KeyPairName,ParameterValue=MyKey ParameterKey=InstanceType,ParameterValue=t1.micro'"
        " or 'KeyPairName=MyKey InstanceType=t1.micro'"
    )


def test_overrides_from_env():
    assert overrides_from_env({}) == {}
    assert overrides_from_env({"PARAMETER_OVERRIDES": 'A=1 B="x y"'}) == {"A": "1", "B": "x y"}
    with pytest.raises(SystemExit, match=r"^PARAMETER_OVERRIDES: oops \(at character 5\) is not a valid format"):
        overrides_from_env({"PARAMETER_OVERRIDES": "A=1 oops"})


# -- the validator ------------------------------------------------------------------------

DECLARATIONS = {
    "Level": {"Type": "String", "Default": "INFO", "AllowedValues": ["DEBUG", "INFO"]},
    "Name": {"Type": "String", "Default": "abc", "AllowedPattern": "[a-z]+", "MinLength": 2, "MaxLength": 5},
    "Count": {"Type": "Number", "Default": 7, "MinValue": 1, "MaxValue": 8},
    "Days": {"Type": "Number", "Default": 30, "AllowedValues": [1, 30, 365]},
    "Flag": {"Type": "String", "Default": False, "AllowedValues": ["true", "false"]},
    "Zones": {"Type": "CommaDelimitedList", "Default": "a,b", "AllowedValues": ["a", "b", "c"]},
    "Hosts": {"Type": "CommaDelimitedList", "Default": "x.example", "AllowedPattern": "[a-z.]+"},
    "Sizes": {"Type": "List<Number>", "Default": "1,2", "MinValue": 1},
    "Free": {"Type": "String", "Default": ""},
}


def message(name: str, value: str, declarations=DECLARATIONS) -> str | None:
    return check_value(name, declarations[name], value)


def test_defaults_pass_and_every_value_comes_back():
    assert validate(DECLARATIONS, {}) == {
        "Level": "INFO",
        "Name": "abc",
        "Count": "7",
        "Days": "30",
        "Flag": "false",
        "Zones": "a,b",
        "Hosts": "x.example",
        "Sizes": "1,2",
        "Free": "",
    }
    assert validate(DECLARATIONS, {"Count": "8", "Free": "anything at all"})["Count"] == "8"


def test_allowed_values():
    assert message("Level", "DEBUG") is None
    assert message("Level", "debug") == "Parameter 'Level' must be one of AllowedValues"
    assert message("Level", "") == "Parameter 'Level' must be one of AllowedValues"
    assert message("Days", "365") is None  # YAML numbers compare as the strings CloudFormation sees
    assert message("Days", "2") == "Parameter 'Days' must be one of AllowedValues"
    assert message("Flag", "true") is None
    assert message("Flag", "True") == "Parameter 'Flag' must be one of AllowedValues"


def test_allowed_pattern_must_match_the_whole_value():
    assert message("Name", "abc") is None
    assert message("Name", "abc1") == "Parameter 'Name' must match pattern [a-z]+"
    assert message("Name", "1abc") == "Parameter 'Name' must match pattern [a-z]+"
    anchored = {"P": {"Type": "String", "AllowedPattern": "^(rate\\(\\d+ minutes?\\)|cron\\(.+\\))$"}}
    assert message("P", "rate(5 minutes)", anchored) is None
    assert message("P", "rate(5 minutes)\n", anchored) == (
        "Parameter 'P' must match pattern ^(rate\\(\\d+ minutes?\\)|cron\\(.+\\))$"
    )
    assert message("P", "every day", anchored) == (
        "Parameter 'P' must match pattern ^(rate\\(\\d+ minutes?\\)|cron\\(.+\\))$"
    )


def test_lengths():
    assert message("Name", "ab") is None and message("Name", "abcde") is None
    assert message("Name", "a") == "Parameter 'Name' must contain at least 2 characters"
    assert message("Name", "abcdef") == "Parameter 'Name' must contain at most 5 characters"


def test_numbers():
    for good in ("1", "8", "7.5", "+2", "1e0", "0.8e1", "3."):
        assert message("Count", good) is None, good
    for bad in ("seven", "", " 7", "7 ", "1_0", "inf", "NaN", "0x7", "1e", "--1"):
        assert message("Count", bad) == "Parameter 'Count' must be a number", bad
    assert message("Count", "0") == "Parameter 'Count' must be a number not less than 1"
    assert message("Count", "0.99") == "Parameter 'Count' must be a number not less than 1"
    assert message("Count", "-3") == "Parameter 'Count' must be a number not less than 1"
    assert message("Count", "8.01") == "Parameter 'Count' must be a number not greater than 8"
    assert message("Count", "9e0") == "Parameter 'Count' must be a number not greater than 8"


def test_lists_are_checked_member_by_member():
    assert message("Zones", "a,c") is None
    assert message("Zones", "a, c") is None  # members are space-trimmed
    assert message("Zones", "a,d") == "Parameter 'Zones' must be one of AllowedValues"
    assert message("Zones", "a,b,c") is None
    assert message("Hosts", "x.example,y.example") is None
    assert message("Hosts", "x.example,Y") == "Parameter 'Hosts' must match pattern [a-z.]+"
    assert message("Sizes", "1,5") is None
    assert message("Sizes", "1,x") == "Parameter 'Sizes' must be a number"
    assert message("Sizes", "1,0") == "Parameter 'Sizes' must be a number not less than 1"


def test_a_constraint_description_replaces_the_reason():
    declarations = {
        "Name": {"Type": "String", "AllowedPattern": "[a-z]+", "MaxLength": 3, "ConstraintDescription": "a-z only"},
        "Level": {"Type": "String", "AllowedValues": ["A"], "ConstraintDescription": "A, always"},
        "Count": {"Type": "Number", "MinValue": 1, "ConstraintDescription": "  at least one\n"},
    }
    assert message("Name", "ab1", declarations) == "Parameter Name failed to satisfy constraint: a-z only"
    assert message("Name", "abcd", declarations) == "Parameter Name failed to satisfy constraint: a-z only"
    assert message("Level", "B", declarations) == "Parameter Level failed to satisfy constraint: A, always"
    assert message("Count", "0", declarations) == "Parameter Count failed to satisfy constraint: at least one"
    assert message("Count", "x", declarations) == "Parameter Count failed to satisfy constraint: at least one"
    assert message("Name", "abc", declarations) is None


def test_unknown_and_missing_parameters():
    with pytest.raises(ParameterError) as raised:
        validate(DECLARATIONS, {"Foo": "1", "Bar": "2", "Level": "INFO"})
    assert raised.value.messages == ["Parameters: [Foo, Bar] do not exist in the template"]
    declarations = {"Required": {"Type": "String"}, "Also": {"Type": "Number"}, "Given": {"Type": "String"}}
    with pytest.raises(ParameterError) as raised:
        validate(declarations, {"Given": "x"})
    assert raised.value.messages == ["Parameters: [Required, Also] must have values"]
    assert validate(declarations, {"Given": "x", "Required": "", "Also": "2"}) == {
        "Required": "",
        "Also": "2",
        "Given": "x",
    }


def test_a_default_that_breaks_its_own_constraints_is_refused_unless_replaced():
    declarations = {"Min": {"Type": "Number", "Default": 0, "MinValue": 1}}
    with pytest.raises(ParameterError, match=r"^Parameter 'Min' must be a number not less than 1$"):
        validate(declarations, {})
    assert validate(declarations, {"Min": "1"}) == {"Min": "1"}


def test_every_problem_is_reported_in_template_order():
    with pytest.raises(ParameterError) as raised:
        validate(DECLARATIONS, {"Count": "0", "Nope": "1", "Level": "TRACE"})
    assert raised.value.messages == [
        "Parameters: [Nope] do not exist in the template",
        "Parameter 'Level' must be one of AllowedValues",
        "Parameter 'Count' must be a number not less than 1",
    ]
    assert str(raised.value) == "\n".join(raised.value.messages)


def test_template_format_errors():
    assert message("X", "v", {"X": {"Type": "Strin"}}) == "Template format error: Unrecognized parameter type: Strin"
    assert (
        message("X", "v", {"X": {"Type": "String", "AllowedPattern": "("}})
        == "Template format error: Parameter 'X' AllowedPattern must be a valid regular expression"
    )
    assert message("X", "v", {"X": {"Type": "AWS::EC2::KeyPair::KeyName"}}) is None  # nothing looked up


# -- the local stack's layers -------------------------------------------------------------


def test_resolve_layers_overrides_over_local_values_over_defaults():
    resolved = resolve(DECLARATIONS, {"Level": "DEBUG", "Count": "2"}, {"Count": "3", "Name": "xyz"})
    assert resolved.values == {"Level": "DEBUG", "Count": "3", "Name": "xyz"}
    assert resolved.effective["Level"] == "DEBUG" and resolved.effective["Count"] == "3"
    assert resolved.effective["Days"] == "30"
    assert resolved.overridden == {"Count": "2", "Name": None}
    assert resolved.describe_overrides() == "Count=3 (instead of the local stack's 2), Name=xyz"
    assert not resolve(DECLARATIONS, {"Level": "DEBUG"}, {}).overridden


def test_resolve_masks_no_echo_values():
    declarations = {"Secret": {"Type": "String", "NoEcho": True, "Default": "d"}}
    resolved = resolve(declarations, {"Secret": "local"}, {"Secret": "mine"})
    assert resolved.effective == {"Secret": "mine"}
    assert resolved.describe_overrides() == "Secret=**** (instead of the local stack's ****)"


def test_resolve_says_where_a_refused_value_came_from():
    with pytest.raises(ParameterError) as raised:
        resolve(
            {**DECLARATIONS, "Broken": {"Type": "Number", "Default": "x"}},
            {"Count": "0", "Typo": "1"},
            {"Level": "TRACE", "Other": "2"},
        )
    assert raised.value.messages == [
        "Parameters: [Typo, Other] do not exist in the template (from PARAMETER_OVERRIDES and the local stack)",
        "Parameter 'Level' must be one of AllowedValues (the value from PARAMETER_OVERRIDES)",
        "Parameter 'Count' must be a number not less than 1 (the local stack's own value; "
        "PARAMETER_OVERRIDES='Count=...' replaces it)",
        "Parameter 'Broken' must be a number (the template's Default)",
    ]
    # an override that replaces a refused local value is what counts
    assert resolve(DECLARATIONS, {"Count": "0"}, {"Count": "1"}).effective["Count"] == "1"


# -- template.yaml and the local stack ----------------------------------------------------

TEMPLATE_PARAMETERS = load_raw()["Parameters"]


@pytest.mark.parametrize("name", sorted(n for n, d in TEMPLATE_PARAMETERS.items() if "Default" in d))
def test_every_template_default_passes_its_own_constraints(name):
    declaration = TEMPLATE_PARAMETERS[name]
    assert validate({name: declaration}, {}) == {name: default_of(declaration)}


def test_the_local_stacks_own_parameters_pass_the_template(tmp_path):
    stack = LocalStack(StackConfig.ephemeral(echo_logs=False, log_file=tmp_path / "stack.log"))
    try:
        resolved = stack.template_parameters()
    finally:
        stack.logs.close()
    assert not resolved.overridden
    assert resolved.values["CybersourceBaseUrl"] == stack.cybersource_url
    assert resolved.values["FlexFactorBaseUrl"] == stack.flexfactor_url


def test_the_local_stack_refuses_overrides_before_anything_starts(tmp_path):
    config = StackConfig.ephemeral(
        echo_logs=False,
        log_file=tmp_path / "stack.log",
        parameter_overrides={"PollRate": "rate(0.5 minutes)", "Stage": "local", "Nope": "x"},
    )
    stack = LocalStack(config)
    with pytest.raises(SystemExit) as raised:
        stack.start()
    assert str(raised.value) == (
        "template parameters refused, nothing started:\n"
        "  Parameters: [Nope] do not exist in the template (from PARAMETER_OVERRIDES)\n"
        f"  {check_value('PollRate', TEMPLATE_PARAMETERS['PollRate'], 'rate(0.5 minutes)')}"
        " (the value from PARAMETER_OVERRIDES)"
    )
    assert "PollRate" in str(raised.value)
    assert not stack.processes and not stack.workers and stack.stack is None
