"""Liquid personalization: every text field of a message's content is a template.

python-liquid (a faithful, maintained implementation of Shopify's Liquid) renders templates
with `customer` (the person's attributes, plus `id` and `email`), `event` (a triggered
message's event: `name` and `data`) and `data` (a send's own values). Rendering happens when a
message is queued; a template that does not parse, or in strict mode a variable that is
missing, is a 422 naming the field, the line and the reason, never a broken message later.
Output is plain text: devices put it in the page as text, so nothing here escapes HTML.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from liquid import BoundTemplate, Environment, StrictDefaultUndefined
from liquid.exceptions import LiquidError

from .errors import Unprocessable

__all__ = ["TEXT_FIELDS", "CompiledContent", "TemplateError", "compile_content", "has_templates"]

# The content fields that are templates; action names are identifiers, not text.
TEXT_FIELDS = ("title", "body", "image_url")
_ACTION_TEXT = ("label", "url")

_LENIENT = Environment(autoescape=False)
# Strict: a missing variable is an error, unless the template gives it a `default`.
_STRICT = Environment(autoescape=False, undefined=StrictDefaultUndefined)


class TemplateError(Unprocessable):
    """A template in the content does not parse or cannot render."""

    code = "invalid_template"


def has_templates(content: Mapping[str, Any]) -> bool:
    """Whether any text field holds Liquid markup (plain content skips rendering entirely)."""
    return any(("{{" in text or "{%" in text) for _, text in _texts(content))


def _texts(content: Mapping[str, Any]) -> list[tuple[str, str]]:
    found = [(name, content[name]) for name in TEXT_FIELDS if isinstance(content.get(name), str)]
    for index, action in enumerate(content.get("actions") or []):
        for name in _ACTION_TEXT:
            if isinstance(action.get(name), str):
                found.append((f"actions[{index}].{name}", action[name]))
    return found


def _describe(field: str, text: str, exc: LiquidError) -> str:
    """`template error in content.body (line 2): 'plan' is undefined`."""
    reason = getattr(exc, "message", None) or str(exc).strip().splitlines()[0]
    token = getattr(exc, "token", None)
    start = getattr(token, "start_index", -1)
    # A token at -1 is the end of the template: an unclosed tag reports its last line.
    line = text.count("\n", 0, start) + 1 if isinstance(start, int) and start >= 0 else text.count("\n") + 1
    return f"template error in content.{field} (line {line}): {reason}"


@dataclass(frozen=True, slots=True)
class CompiledContent:
    """Content whose templates parsed: render it once per person."""

    content: Mapping[str, Any]
    templates: Mapping[str, BoundTemplate]
    sources: Mapping[str, str]

    def render(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """The content with every template rendered against `context`; 422 on a render error."""
        rendered: dict[str, Any] = dict(self.content)
        rendered["actions"] = [dict(a) for a in self.content.get("actions") or []]
        for field, template in self.templates.items():
            try:
                text = template.render(**context)
            except LiquidError as exc:
                raise TemplateError(_describe(field, self.sources[field], exc)) from None
            if field.startswith("actions["):
                index, name = field[len("actions["):].split("].")
                rendered["actions"][int(index)][name] = text
            else:
                rendered[field] = text
        return rendered


def compile_content(content: Mapping[str, Any], *, strict: bool = False) -> CompiledContent:
    """Parse every template of the content now, so a broken one fails the send, not the poll."""
    env = _STRICT if strict else _LENIENT
    templates: dict[str, BoundTemplate] = {}
    sources: dict[str, str] = {}
    for field, text in _texts(content):
        if "{{" not in text and "{%" not in text:
            continue
        try:
            templates[field] = env.from_string(text)
        except LiquidError as exc:
            raise TemplateError(_describe(field, text, exc)) from None
        sources[field] = text
    return CompiledContent(content, templates, sources)
