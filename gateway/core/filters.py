"""Attribute filters over people, compiled to a PostgreSQL jsonpath predicate with variables.

A filter is `{"attribute": name, "op": op, "value": v}` with op one of eq, ne, lt, lte, gt,
gte, in, exists; or `{"and": [F, ...]}`, `{"or": [F, ...]}`, `{"not": F}`. It compiles to
`(jsonpath text, vars)` for `jsonb_path_match(attributes, $path::jsonpath, $vars::jsonb)`: the
statement text stays constant and values are never spliced into SQL, only passed as jsonpath
variables. Every comparison is wrapped in `exists(...)`, so a missing attribute makes `eq`
false and `ne` true instead of "unknown". Times compare as numbers: attributes named `*_at`
are Unix seconds, and an ISO 8601 value given for one is converted (UTC when it has no zone).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import InvalidFilter

__all__ = ["CompiledFilter", "compile_filter"]

_COMPARE = {"eq": "==", "ne": "==", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
_MAX_NODES = 100
_MAX_IN = 1000


@dataclass(frozen=True, slots=True)
class CompiledFilter:
    path: str
    vars: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"path": self.path, "vars": self.vars}


class _Compiler:
    def __init__(self) -> None:
        self.vars: dict[str, Any] = {}
        self.nodes = 0

    def var(self, value: Any) -> str:
        name = f"v{len(self.vars)}"
        self.vars[name] = value
        return "$" + name

    def compile(self, node: Any, where: str) -> str:
        self.nodes += 1
        if self.nodes > _MAX_NODES:
            raise InvalidFilter(f"a filter has at most {_MAX_NODES} conditions - at `{where}`")
        if not isinstance(node, dict):
            raise InvalidFilter(f"a filter is a JSON object - at `{where}`")
        if set(node) == {"and"} or set(node) == {"or"}:
            (kind, items), = node.items()
            if not isinstance(items, list) or not items:
                raise InvalidFilter(f"`{kind}` takes a non-empty list of filters - at `{where}`")
            joiner = " && " if kind == "and" else " || "
            return "(" + joiner.join(self.compile(item, f"{where}.{kind}[{i}]") for i, item in enumerate(items)) + ")"
        if set(node) == {"not"}:
            return "!(" + self.compile(node["not"], f"{where}.not") + ")"
        return self.condition(node, where)

    def condition(self, node: dict[str, Any], where: str) -> str:
        attribute, op = node.get("attribute"), node.get("op")
        if not isinstance(attribute, str) or not 1 <= len(attribute) <= 64:
            raise InvalidFilter(
                "a condition needs `attribute` (1 to 64 characters), `op` and `value`, or use and/or/not"
                f" - at `{where}`",
            )
        allowed = {"attribute", "op", "value"}
        if set(node) - allowed:
            unknown = sorted(set(node) - allowed)
            raise InvalidFilter(f"unknown filter fields {unknown} - at `{where}`")
        field = '$."' + attribute.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if op == "exists":
            return f"exists({field})"
        if not isinstance(op, str) or (op not in _COMPARE and op != "in"):
            raise InvalidFilter(
                f"`op` is one of eq, ne, lt, lte, gt, gte, in, exists - at `{where}.op`"
            )
        if "value" not in node:
            raise InvalidFilter(f"`{op}` needs a `value` - at `{where}`")
        value = node["value"]
        if op == "in":
            if not isinstance(value, list) or not 1 <= len(value) <= _MAX_IN:
                raise InvalidFilter(f"`in` takes a list of 1 to {_MAX_IN} values - at `{where}.value`")
            options = " || ".join(f"@ == {self.var(self.scalar(attribute, v, where))}" for v in value)
            return f"exists({field} ? ({options}))"
        test = f"exists({field} ? (@ {_COMPARE[op]} {self.var(self.scalar(attribute, value, where))}))"
        return "!" + test if op == "ne" else test

    @staticmethod
    def scalar(attribute: str, value: Any, where: str) -> Any:
        if attribute.endswith("_at") and isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise InvalidFilter(
                    f"`{attribute}` is a time: give Unix seconds or an ISO 8601 time - at `{where}.value`",
                ) from None
            # A time without a zone is UTC, never the server's local time.
            return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
        if value is not None and not isinstance(value, str | int | float | bool):
            raise InvalidFilter(f"a filter value is a string, number, boolean or null - at `{where}.value`")
        return value


def compile_filter(node: Any, where: str = "$.filter") -> CompiledFilter:
    """Validate a filter and compile it; a 422 `invalid_filter` names what is wrong and where."""
    compiler = _Compiler()
    path = compiler.compile(node, where)
    return CompiledFilter(path, compiler.vars)
