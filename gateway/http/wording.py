"""Validation errors in our own words: what was wrong and how to fix it, the field named as the docs name it.

msgspec names the failing field exactly (`$.content.layout`) but words the problem for
programmers (`Invalid enum value 'x'`, `Expected str matching regex '^…$'`). Each of its message
forms is rewritten here; the allowed values, bounds and formats come from the request type's own
JSON schema, so the wording cannot drift from the validation. A form this module does not know
still gets a plain sentence, never the library's.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import msgspec

__all__ = ["validation_message"]

_AT = re.compile(r"^(?P<what>.*?)(?: - at `(?P<path>\$[^`]*)`)?$", re.DOTALL)
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")

_TYPE_WORDS = {
    "int": "a whole number",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "null": "null",
    "array": "a list",
    "object": "a JSON object",
    "datetime": "a time",
    "uuid": "a UUID",
}

# Formats a pattern stands for, in the words of docs/api.md.
_PATTERN_WORDS = {
    r"^[A-Za-z0-9._:-]+$": "letters, digits and . _ : - only",
    r"^(https?://|/|\{\{)": "a URL that starts with https://, http:// or /",
    r"^[^@\s]+@[^@\s]+$": "an email address, such as ada@example.com",
    r"^anon_[A-Za-z0-9_-]{16,64}$": "`anon_` and 16 to 64 random letters, digits, _ or - (the web SDK makes one)",
}

_TIME = "a time: ISO 8601 with a time zone (2026-12-31T00:00:00Z) or Unix seconds"


def validation_message(error: str, kind: type) -> str:
    """Our sentence for one `msgspec.ValidationError` raised while converting to `kind`."""
    match = _AT.match(error)
    assert match is not None  # the pattern matches any string
    what, path = match["what"], match["path"] or "$"
    field = _field_name(path)
    schema = _schema_at(kind, path)
    return f"{_sentence(what, field, schema)} - at `{path}`"


def _sentence(what: str, field: str, schema: dict[str, Any]) -> str:
    if found := re.fullmatch(r"Object missing required field `(.+)`", what):
        return f"the required field `{found[1]}` is missing; add it"
    if found := re.fullmatch(r"Object contains unknown field `(.+)`", what):
        return f"`{found[1]}` is not a field here; remove it, or check its spelling in docs/api.md"
    if what == "Invalid UUID":
        return f"`{field}` must be a UUID, such as 3f2b8c1e-5d4a-4e7b-9c1d-2a6f8e0b7c54"
    if what.startswith("Invalid enum value"):
        choices = _enum(schema)
        allowed = f"one of {', '.join(choices)}" if choices else "a value listed in docs/api.md"
        return f"`{field}` must be {allowed}"
    if what.startswith("Invalid RFC3339") or "datetime" in what:
        return f"`{field}` must be {_TIME}"
    if found := re.fullmatch(r"Expected `(.+)`, got `(.+)`", what):
        return f"`{field}` must be {_types(found[1])}, not {_types(found[2])}"
    if found := re.fullmatch(r"Expected `(\w+)` (<=|>=|<|>) (\S+)", what):
        words = {"<=": "at most", ">=": "at least", "<": "less than", ">": "more than"}[found[2]]
        return f"`{field}` must be {words} {found[3]}"
    if found := re.fullmatch(r"Expected `(\w+)` of length (<=|>=) (\d+)", what):
        unit = {"str": "character", "array": "item", "object": "entry"}.get(found[1], "item")
        count = int(found[3])
        if (found[1], found[2], count) in (("str", ">=", 1), ("array", ">=", 1)):
            return f"`{field}` must not be empty"
        plural = unit if count == 1 else ("entries" if unit == "entry" else unit + "s")
        words = "at most" if found[2] == "<=" else "at least"
        return f"`{field}` takes {words} {count} {plural}"
    if found := re.fullmatch(r"Expected `str` matching regex '(.+)'", what, flags=re.DOTALL):
        pattern = found[1].encode().decode("unicode_escape")
        return f"`{field}` must be {_PATTERN_WORDS.get(pattern, 'in the form docs/api.md gives')}"
    return f"`{field}` is not valid here; see docs/api.md for what it takes"


def _field_name(path: str) -> str:
    """`$.content.actions[2].label` → `label`: the name a person looks up in the docs."""
    names = [name for name, _ in _STEP.findall(path) if name]
    return names[-1] if names else "the body"


def _types(spec: str) -> str:
    words = [_TYPE_WORDS.get(part.strip(), part.strip()) for part in spec.split("|")]
    if "a time" in words:
        return _TIME
    return " or ".join(words)


def _enum(schema: dict[str, Any]) -> list[str]:
    for option in [schema, *schema.get("anyOf", [])]:
        if "enum" in option:
            return [str(value) for value in option["enum"]]
    return []


@functools.cache
def _components(kind: type) -> tuple[dict[str, Any], dict[str, Any]]:
    (schema,), components = msgspec.json.schema_components([kind], ref_template="{name}")
    return schema, components


def _schema_at(kind: type, path: str) -> dict[str, Any]:
    """The JSON schema of the value at `path` in `kind`, or {} where the path leaves the type."""
    schema, components = _components(kind)
    for name, index in _STEP.findall(path):
        schema = _resolve(schema, components)
        if name:
            options = [schema, *schema.get("anyOf", [])]
            found = [_resolve(o, components)["properties"][name] for o in options
                     if name in _resolve(o, components).get("properties", {})]
            if not found:
                return {}
            schema = found[0]
        elif index:
            options = [schema, *schema.get("anyOf", [])]
            items = [_resolve(o, components)["items"] for o in options if "items" in _resolve(o, components)]
            if not items:
                return {}
            schema = items[0]
    return _resolve(schema, components)


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = components[schema["$ref"]]
    return schema
