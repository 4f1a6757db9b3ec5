"""HTML forms to the API's request shapes: a form is turned into the JSON the API would receive and
validated by the same schemas, so the console accepts exactly what the API accepts and its
messages name the same fields.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, TypeVar

import orjson
from multidict import MultiDictProxy

from ...errors import Unprocessable
from ..schemas import parse_body

__all__ = [
    "ACTION_SLOTS", "confirmed", "content_of", "cursor_of", "cursor_text", "field", "filter_of", "recipient_of",
    "validate",
]

T = TypeVar("T")
Form = MultiDictProxy[Any]

# Buttons a message can have in the console's forms (the API allows 10; three fit a card).
ACTION_SLOTS = 3


def field(form: Form, name: str) -> str:
    """A text field, stripped; a file upload or a missing field reads as empty."""
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def validate(value: dict[str, Any], kind: type[T]) -> T:
    """`value` checked as the API checks a body of `kind` (422 naming the field)."""
    return parse_body(orjson.dumps(value), kind)


def content_of(form: Form) -> dict[str, Any]:
    """Content from the compose fields: empty fields are left out, so the API's defaults apply."""
    content: dict[str, Any] = {"layout": field(form, "layout") or "modal"}
    for name in ("title", "body", "image_url", "element_id"):
        if field(form, name):
            content[name] = field(form, name)
    actions = []
    for i in range(ACTION_SLOTS):
        label, url = field(form, f"action_label_{i}"), field(form, f"action_url_{i}")
        name = field(form, f"action_name_{i}") or (f"action_{i + 1}" if label else "")
        if label or url or field(form, f"action_name_{i}"):
            action: dict[str, Any] = {"name": name, "label": label}
            if url:
                action["url"] = url
            actions.append(action)
    if actions:
        content["actions"] = actions
    return content


def recipient_of(form: Form, prefix: str = "to") -> dict[str, str]:
    """`{"id": …}` or `{"email": …}` from a "to" field and its kind (an @ picks email when unsaid)."""
    who = field(form, prefix)
    kind = field(form, prefix + "_kind") or ("email" if "@" in who else "id")
    return {"email" if kind == "email" else "id": who} if who else {}


def filter_of(text: str) -> Any:
    """An attribute filter typed as JSON; not JSON is kept as text, which the filter check refuses by name."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def confirmed(form: Form) -> bool:
    """Whether the form's "yes, do it" box was ticked (recall, resend, delete, disable ask first)."""
    return field(form, "confirm") == "yes"


def cursor_text(cursor: tuple[datetime, uuid.UUID] | None) -> str:
    """The `before` query value of a page's "Older" link: the last row's time and id."""
    return "" if cursor is None else f"{cursor[0].isoformat()}~{cursor[1]}"


def cursor_of(text: str) -> tuple[datetime, uuid.UUID] | None:
    """A `before` query value back to a cursor; empty is the first page, anything else malformed a 422."""
    if not text:
        return None
    at, _, ident = text.partition("~")
    try:
        when = datetime.fromisoformat(at)
        if when.tzinfo is None:
            raise ValueError(at)
        return when, uuid.UUID(ident)
    except ValueError:
        raise Unprocessable("this page link is broken (its `before` is not one the console made): "
                            "start again from the first page") from None
