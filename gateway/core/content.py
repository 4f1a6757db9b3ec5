"""A message's content: its schema, the rules its fields cannot express, and its stored form.

The schema lives in the core, not beside the request schemas, because rendering checks that
personalized content is still valid content (lengths, URL schemes) with the same rules.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec

from ..errors import Unprocessable

__all__ = ["Action", "Content", "Url", "check_content", "is_email", "stored_content"]

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
ShortText = Annotated[str, msgspec.Meta(max_length=1000)]
LongText = Annotated[str, msgspec.Meta(max_length=10_000)]
Url = Annotated[str, msgspec.Meta(max_length=2048, pattern=r"^(https?://|/|\{\{)")]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


class Action(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Name
    label: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    url: Url | None = None


class Content(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    title: ShortText | None = None
    body: LongText | None = None
    image_url: Url | None = None
    actions: Annotated[list[Action], msgspec.Meta(max_length=10)] = []
    layout: Literal["modal", "banner_top", "banner_bottom", "inline"] = "modal"
    element_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None


def check_content(content: Content, at: str = "$.content") -> None:
    """Rules one field's type cannot express; `at` names where the content sits in the request."""
    if content.title is None and content.body is None:
        raise Unprocessable(f"content needs a `title` or a `body` - at `{at}`")
    if content.layout == "inline" and content.element_id is None:
        raise Unprocessable(f"an inline message needs `element_id` - at `{at}.element_id`")


def stored_content(content: Content) -> dict[str, Any]:
    """The content as stored: every field present, so devices see one shape."""
    return {
        "title": content.title,
        "body": content.body,
        "image_url": content.image_url,
        "actions": [{"name": a.name, "label": a.label, "url": a.url} for a in content.actions],
        "layout": content.layout,
        "element_id": content.element_id,
    }


def is_email(text: str) -> bool:
    return len(text) <= 254 and _EMAIL.match(text) is not None
