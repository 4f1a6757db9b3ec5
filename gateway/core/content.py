"""A message's content: its schema, the rules its fields cannot express, and its stored form.

The schema lives in the core, not beside the request schemas, because rendering checks that
personalized content is still valid content (lengths, URL schemes) with the same rules.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec

from ..errors import Unprocessable

__all__ = ["Action", "Content", "PageRule", "Url", "check_content", "is_email", "stored_content"]

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
ShortText = Annotated[str, msgspec.Meta(max_length=1000)]
LongText = Annotated[str, msgspec.Meta(max_length=10_000)]
Url = Annotated[str, msgspec.Meta(max_length=2048, pattern=r"^(https?://|/|\{\{)")]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
# The web SDK runs a page rule's pattern as a JavaScript RegExp: Python-only syntax (named groups
# `(?P<…>`, comments, inline flags, atomic groups, `\A` `\Z`) would never match there.
_PYTHON_ONLY = re.compile(r"\(\?(P|#|>|[aiLmsux-]+[:)])|\\[AZ]")
RuleText = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class Action(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Name
    label: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    url: Url | None = None


class PageRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where a web page shows a message: its path matches `glob` or `pattern`, a JavaScript regular
    expression (exactly one)."""

    glob: Annotated[RuleText, msgspec.Meta(pattern="^/")] | None = None
    pattern: RuleText | None = None


class Content(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    title: ShortText | None = None
    body: LongText | None = None
    image_url: Url | None = None
    actions: Annotated[list[Action], msgspec.Meta(max_length=10)] = []
    layout: Literal["modal", "banner_top", "banner_bottom", "inline"] = "modal"
    element_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None
    page: PageRule | None = None


def check_content(content: Content, at: str = "$.content") -> None:
    """Rules one field's type cannot express; `at` names where the content sits in the request."""
    if content.title is None and content.body is None:
        raise Unprocessable(f"content needs a `title` or a `body` - at `{at}`")
    if content.layout == "inline" and content.element_id is None:
        raise Unprocessable(f"an inline message needs `element_id` - at `{at}.element_id`")
    if content.page is not None:
        check_page_rule(content.page, f"{at}.page")


def check_page_rule(rule: PageRule, at: str) -> None:
    """A rule is a glob or a pattern the browser can run; a broken one fails the send, not the page."""
    if (rule.glob is None) == (rule.pattern is None):
        raise Unprocessable(f"a page rule needs exactly one of `glob` and `pattern` - at `{at}`")
    if rule.pattern is None:
        return
    try:
        re.compile(rule.pattern)
    except re.error as exc:
        raise Unprocessable(f"not a regular expression: {exc} - at `{at}.pattern`") from None
    if _PYTHON_ONLY.search(rule.pattern):
        raise Unprocessable(
            f"write the pattern as JavaScript reads it (no `(?P<`, inline flags or `\\A`) - at `{at}.pattern`"
        )


def stored_content(content: Content) -> dict[str, Any]:
    """The content as stored: every field present, so devices see one shape; `page` only when set
    (messages stored before page rules have none)."""
    stored: dict[str, Any] = {
        "title": content.title,
        "body": content.body,
        "image_url": content.image_url,
        "actions": [{"name": a.name, "label": a.label, "url": a.url} for a in content.actions],
        "layout": content.layout,
        "element_id": content.element_id,
    }
    if content.page is not None:
        stored["page"] = {k: v for k, v in msgspec.structs.asdict(content.page).items() if v is not None}
    return stored


def is_email(text: str) -> bool:
    return len(text) <= 254 and _EMAIL.match(text) is not None
