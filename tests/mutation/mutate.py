"""A small AST mutator: every one-line change of a module that a test suite should notice.

Why our own and not mutmut or cosmic-ray (both tried, see ``results.md``): mutmut 3 only
mutates inside functions (its trampolines leave every module-level statement as it is),
so the data tables this run is about (``CVV_STEMS``, ``DECLINED_STATUS_WORDS``,
``MAX_BODY_BYTES``, the state machine's ``_RANK``) are never touched; cosmic-ray mutates
the source file in place (this tree is shared while tests run) and has no operator that
removes an element from a set, tuple or dict literal, deletes a statement or changes a
string. Neither reads a JSON data table (``retry_rules.json``).

Operators (each mutant is one change, named by ``Mutant.key``):

- ``compare``: ``<``/``<=``/``>``/``>=`` to their neighbour, ``==``/``!=``, ``in``/``not in``,
  ``is``/``is not`` swapped;
- ``boolop``: ``and``/``or`` swapped; ``not x`` to ``x``;
- ``negate``: the test of an ``if``, ``while``, conditional expression or comprehension
  filter negated;
- ``arith``: ``+``/``-`` swapped, ``*`` to ``/`` (``//`` to ``*``, ``%`` to ``//``);
- ``number``: an integer ``n`` to ``n + 1`` (never a bool, never inside a log or metric call);
- ``string``: a string compared with ``==``/``!=``/``in`` (either side) changed;
- ``remove``: one element removed from a set, list or tuple literal of constants, or one
  item from a dict literal with constant keys (module-level data tables included);
- ``delete``: a statement that is a call, a ``raise``, an augmented assignment or an
  assignment to an attribute or subscript replaced by ``pass``;
- ``json``: for a JSON data table, an entry removed, a boolean flipped, an integer + 1
  (the paths are the module's ``json_paths`` in ``config.py``).

Not mutated: docstrings, annotations, f-strings, and the arguments of log and metric calls
(``logger.*``, ``metrics.*``, ``emit``): what is logged is checked by the log-scanning
tests, not by these modules' tests.
"""

from __future__ import annotations

import ast
import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

_COMPARE_SWAPS = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_ARITH_SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.FloorDiv: ast.Mult, ast.Mod: ast.FloorDiv}
_QUIET_CALLS = frozenset({"logger", "metrics", "emit", "_rejected", "warn"})
_OP_TEXT = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
}


@dataclass(frozen=True)
class Mutant:
    module: str  # the name in config.MODULES
    index: int  # the site's position in the module's walk
    variant: int  # which change at that site
    line: int
    scope: str  # the top-level function, class or constant it is in
    operator: str
    description: str
    key: str = ""  # scope, operator and description (+ "#n" when repeated): stable across edits elsewhere

    def label(self) -> str:
        return f"{self.module}:{self.line} {self.scope}: {self.description}"


def _short(node: ast.AST, width: int = 70) -> str:
    try:
        text = ast.unparse(node)
    except Exception:  # noqa: BLE001
        text = type(node).__name__
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _is_docstring(node: ast.AST, parent: ast.AST | None) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        and parent is not None
        and isinstance(parent, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    )


def _call_root(func: ast.AST) -> str | None:
    while isinstance(func, ast.Attribute):
        func = func.value
    return func.id if isinstance(func, ast.Name) else None


def _quiet_call(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and _call_root(node.func) in _QUIET_CALLS


def _constant_elements(elts: list[ast.AST]) -> bool:
    return bool(elts) and all(isinstance(e, ast.Constant) for e in elts)


class _Walker:
    """Walks a module in a fixed order, numbering the nodes that can be mutated; with
    ``target`` set, applies that one change instead of listing them."""

    def __init__(self, scopes: frozenset[str] | None, target: tuple[int, int] | None = None) -> None:
        self.scopes = scopes
        self.target = target
        self.sites: list[tuple[int, int, int, str, str, str]] = []  # index, variant, line, scope, op, description
        self.counter = 0
        self.applied = False

    # each candidate change is (operator, description, apply) where apply edits in place
    def _changes(self, node: ast.AST, parent: ast.AST, field: str, pos: int | None) -> Iterator[tuple[str, str, Any]]:
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                swap = _COMPARE_SWAPS.get(type(op))
                if swap:
                    text = f"{_short(node)}: {_OP_TEXT[type(op)]} -> {_OP_TEXT[swap]}"
                    yield "compare", text, lambda n=node, i=i, s=swap: n.ops.__setitem__(i, s())
            if any(isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn)) for op in node.ops):
                for side in [node.left, *node.comparators]:
                    if isinstance(side, ast.Constant) and isinstance(side.value, str):
                        yield (
                            "string",
                            f"{_short(node)}: {side.value!r} -> 'XX{side.value}XX'",
                            (lambda s=side: setattr(s, "value", f"XX{s.value}XX")),
                        )
        elif isinstance(node, ast.BoolOp):
            swap = ast.Or if isinstance(node.op, ast.And) else ast.And
            yield (
                "boolop",
                f"{_short(node)}: {'and' if swap is ast.Or else 'or'} -> {'or' if swap is ast.Or else 'and'}",
                (lambda n=node, s=swap: setattr(n, "op", s())),
            )
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            yield "boolop", f"{_short(node)}: 'not' removed", lambda: self._replace(parent, field, pos, node.operand)
        elif isinstance(node, ast.BinOp) and type(node.op) in _ARITH_SWAPS:
            swap = _ARITH_SWAPS[type(node.op)]
            yield (
                "arith",
                f"{_short(node)}: {_OP_TEXT[type(node.op)]} -> {_OP_TEXT[swap]}",
                (lambda n=node, s=swap: setattr(n, "op", s())),
            )
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            yield (
                "number",
                f"{_short(parent)}: {node.value} -> {node.value + 1}",
                (lambda n=node: setattr(n, "value", n.value + 1)),
            )
        elif isinstance(node, (ast.Set, ast.List, ast.Tuple)) and _constant_elements(node.elts):
            for i, elt in enumerate(node.elts):
                if len(node.elts) == 1 and isinstance(node, ast.Set):
                    continue  # {} would be a dict
                yield "remove", f"{_short(node, 50)}: {_short(elt, 40)} removed", (lambda n=node, i=i: n.elts.pop(i))
        elif isinstance(node, ast.Dict) and node.keys and all(isinstance(k, ast.Constant) for k in node.keys):
            for i, k in enumerate(node.keys):
                yield (
                    "remove",
                    f"{_short(node, 50)}: key {_short(k, 40)} removed",
                    (lambda n=node, i=i: (n.keys.pop(i), n.values.pop(i))),
                )
        if isinstance(node, (ast.If, ast.While, ast.IfExp)):
            yield (
                "negate",
                f"{_short(node.test)}: negated",
                (lambda n=node: setattr(n, "test", ast.UnaryOp(op=ast.Not(), operand=n.test))),
            )
        if isinstance(node, ast.comprehension):
            for i, cond in enumerate(node.ifs):
                yield (
                    "negate",
                    f"{_short(cond)}: negated",
                    (lambda n=node, i=i, c=cond: n.ifs.__setitem__(i, ast.UnaryOp(op=ast.Not(), operand=c))),
                )
        if isinstance(node, ast.stmt) and pos is not None and self._deletable(node):
            yield "delete", f"{_short(node)}: deleted", lambda: self._replace(parent, field, pos, ast.Pass())

    @staticmethod
    def _deletable(node: ast.stmt) -> bool:
        if isinstance(node, ast.Expr):
            return isinstance(node.value, ast.Call) and not _quiet_call(node.value)
        if isinstance(node, (ast.Raise, ast.AugAssign)):
            return True
        if isinstance(node, ast.Assign):
            return all(isinstance(t, (ast.Attribute, ast.Subscript)) for t in node.targets)
        return False

    @staticmethod
    def _replace(parent: ast.AST, field: str, pos: int | None, new: ast.AST) -> None:
        if pos is None:
            setattr(parent, field, new)
        else:
            getattr(parent, field)[pos] = new

    def visit(self, node: ast.AST, parent: ast.AST | None, field: str, pos: int | None, scope: str) -> None:
        if _is_docstring(node, parent) or isinstance(node, ast.JoinedStr) or _quiet_call(node):
            return
        if isinstance(node, ast.ImportFrom | ast.Import):
            return
        if parent is not None:
            changes = list(self._changes(node, parent, field, pos))
            if changes and (self.scopes is None or scope in self.scopes):
                index = self.counter
                self.counter += 1
                for variant, (op, text, apply) in enumerate(changes):
                    if self.target == (index, variant):
                        apply()
                        self.applied = True
                        return
                    if self.target is None:
                        self.sites.append((index, variant, getattr(node, "lineno", 0), scope, op, text))
        for name, value in ast.iter_fields(node):
            if name in ("annotation", "returns", "type_comment", "decorator_list"):
                continue
            if isinstance(value, list):
                for i, item in enumerate(list(value)):
                    if isinstance(item, ast.AST):
                        self.visit(item, node, name, i, scope or _scope_of(item))
                        if self.applied:
                            return
            elif isinstance(value, ast.AST):
                self.visit(value, node, name, None, scope or _scope_of(value))
                if self.applied:
                    return


def _scope_of(node: ast.AST) -> str:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node.name
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        return names[0] if names else "<module>"
    return "<module>"


def python_mutants(module: str, source: str, scopes: frozenset[str] | None) -> list[Mutant]:
    walker = _Walker(scopes)
    walker.visit(ast.parse(source), None, "", None, "")
    return _keyed(
        [
            Mutant(module, index, variant, line, scope or "<module>", op, text)
            for index, variant, line, scope, op, text in walker.sites
        ]
    )


def apply_python(source: str, mutant: Mutant, scopes: frozenset[str] | None) -> str:
    tree = ast.parse(source)
    walker = _Walker(scopes, target=(mutant.index, mutant.variant))
    walker.visit(tree, None, "", None, "")
    if not walker.applied:
        raise LookupError(f"mutant {mutant.label()} not found")
    return ast.unparse(ast.fix_missing_locations(tree))


def _keyed(mutants: list[Mutant]) -> list[Mutant]:
    seen: dict[str, int] = {}
    out = []
    for m in mutants:
        base = f"{m.scope}: {m.description}"
        seen[base] = seen.get(base, 0) + 1
        key = base if seen[base] == 1 else f"{base} #{seen[base]}"
        out.append(Mutant(m.module, m.index, m.variant, m.line, m.scope, m.operator, m.description, key))
    return out


# -- JSON data tables --------------------------------------------------------------------


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def _json_sites(doc: Any, path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], str, Any]]:
    """(path, what, change) for the node at ``path``: each entry removed, each bool flipped,
    each int + 1, recursively below it."""
    node = _at(doc, path)
    if isinstance(node, dict):
        for k, v in node.items():
            yield (*path, k), "removed", None
            yield from _json_sites(doc, (*path, k)) if isinstance(v, (dict, list, bool, int)) else iter(())
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield (*path, i), "removed", None
            if isinstance(v, (dict, list)):
                yield from _json_sites(doc, (*path, i))
    elif isinstance(node, bool):
        yield path, f"{str(node).lower()} -> {str(not node).lower()}", not node
    elif isinstance(node, int):
        yield path, f"{node} -> {node + 1}", node + 1


def json_mutants(module: str, text: str, paths: list[tuple[Any, ...]]) -> list[Mutant]:
    doc = json.loads(text)
    out = []
    for root in paths:
        for path, what, _ in _json_sites(doc, tuple(root)):
            where = "/".join(map(str, path))
            out.append(Mutant(module, len(out), 0, 0, "retry_rules.json", "json", f"{where}: {what}"))
    return _keyed(out)


def apply_json(text: str, mutant: Mutant, paths: list[tuple[Any, ...]]) -> str:
    doc = json.loads(text)
    sites = [s for root in paths for s in _json_sites(doc, tuple(root))]
    path, what, new = sites[mutant.index]
    parent = _at(doc, path[:-1])
    if what == "removed":
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return json.dumps(copy.deepcopy(doc), indent=2)
