"""Read template.yaml as CloudFormation sees it: SAM-translated, intrinsics resolved.

The SAM translator (the same one `sam build`/`sam deploy` use) expands the serverless
resources into plain CloudFormation; ``Resolver`` then evaluates the intrinsic
functions the local stack needs (Ref, Fn::Sub, Fn::GetAtt, Fn::Join, Fn::If, ...)
against parameter values and the physical ids of what the local stack created.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
ACCOUNT_ID = "123456789012"


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that turns CloudFormation short tags into their long form."""


def _tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if name == "Fn::GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _tag)


def load_raw(path: Path = TEMPLATE) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


class _NoManagedPolicies:
    """The translator asks IAM for managed policy ARNs; locally there is no IAM."""

    def load(self) -> dict[str, str]:
        return {}


def translate(raw: dict[str, Any], parameters: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The SAM-translated template, and each function's local code directory."""
    from samtranslator.translator.transform import transform

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # the translator insists
    raw = copy.deepcopy(raw)
    code_dirs: dict[str, str] = {}
    for logical_id, resource in raw.get("Resources", {}).items():
        props = resource.get("Properties", {})
        if resource.get("Type") == "AWS::Serverless::Function":
            code_dirs[logical_id] = str(ROOT / props.get("CodeUri", "."))
            props["CodeUri"] = f"s3://local-code/{logical_id}.zip"
        elif resource.get("Type") == "AWS::Serverless::LayerVersion":
            code_dirs[logical_id] = str(ROOT / props.get("ContentUri", "."))
            props["ContentUri"] = f"s3://local-code/{logical_id}.zip"
    params = {"AWS::Region": "us-east-1", "AWS::AccountId": ACCOUNT_ID, **parameters}
    translated = transform(raw, params, _NoManagedPolicies())
    return translated, code_dirs


_SUB_VAR = re.compile(r"\$\{([^}!]+)\}")


@dataclass
class Resolver:
    """Evaluates intrinsic functions against parameters and created resources."""

    template: dict[str, Any]
    parameters: dict[str, Any]
    stack_name: str
    region: str = "us-east-1"
    physical_ids: dict[str, str] = field(default_factory=dict)
    attributes: dict[tuple[str, str], Any] = field(default_factory=dict)

    def pseudo(self) -> dict[str, Any]:
        return {
            "AWS::StackName": self.stack_name,
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": None,
        }

    def parameter_values(self) -> dict[str, Any]:
        values = {}
        for name, spec in self.template.get("Parameters", {}).items():
            value = self.parameters.get(name, spec.get("Default"))
            values[name] = str(value) if value is not None else None
        return values

    def ref(self, name: str) -> Any:
        pseudo = self.pseudo()
        if name in pseudo:
            return pseudo[name]
        params = self.parameter_values()
        if name in params:
            return params[name]
        if name in self.physical_ids:
            return self.physical_ids[name]
        raise KeyError(f"Ref {name}: not a parameter or a created resource")

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template.get("Conditions", {})[name]))

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [v for v in (self.resolve(v) for v in value) if v is not None]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                logical, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.attribute(logical, attr)
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::Join":
                sep, items = arg
                return sep.join(str(i) for i in self.resolve(items))
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::Split":
                sep, text = arg
                return str(self.resolve(text)).split(sep)
            if key == "Fn::If":
                cond, yes, no = arg
                return self.resolve(yes if self.condition(cond) else no)
            if key == "Fn::Equals":
                a, b = (self.resolve(x) for x in arg)
                return str(a) == str(b)
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(x) for x in arg)
            if key == "Fn::Or":
                return any(self.resolve(x) for x in arg)
            if key == "Condition":
                return self.condition(arg)
            self.unknown(key)
        return {k: self.resolve(v) for k, v in value.items()}

    def attribute(self, logical_id: str, attribute: str) -> Any:
        """``Fn::GetAtt`` (and ``${X.Attr}``): a created resource's attribute."""
        return self.attributes[(logical_id, attribute)]

    def unknown(self, key: str) -> None:
        """A one-key object this resolver does not evaluate: kept as data here."""

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        variables = {k: self.resolve(v) for k, v in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name and name.split(".", 1)[0] in self.template.get("Resources", {}):
                logical, attr = name.split(".", 1)
                return str(self.attribute(logical, attr))
            return str(self.ref(name))

        return _SUB_VAR.sub(replace, text)
