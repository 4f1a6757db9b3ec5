"""Request bodies as typed structs: parse with orjson, validate with msgspec, fail with a 4xx.

msgspec was chosen over hand-written checks and pydantic: it validates the already-parsed dict
in microseconds (the poll path runs it on every request) and names the failing field
(`Expected int, got str - at $.priority`), which becomes the error message as is.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

import msgspec
import orjson

from .errors import BadRequest, Unprocessable

__all__ = [
    "Action",
    "Content",
    "EventReport",
    "EventsRequest",
    "IntervalsPatch",
    "PersonEventRequest",
    "PollRequest",
    "Recipient",
    "SendRequest",
    "TemplateRequest",
    "TestMessageRequest",
    "TrackRequest",
    "TriggerMessage",
    "TriggerRequest",
    "WorkspacePatch",
    "parse_body",
    "parse_object",
]

T = TypeVar("T")

SiteId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
User = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
DeviceId = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]
UserHash = Annotated[str, msgspec.Meta(max_length=128)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
ShortText = Annotated[str, msgspec.Meta(max_length=1000)]
LongText = Annotated[str, msgspec.Meta(max_length=10_000)]
Url = Annotated[str, msgspec.Meta(max_length=2048, pattern=r"^(https?://|/|\{\{)")]
Email = Annotated[str, msgspec.Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
Seconds = Annotated[int, msgspec.Meta(ge=1, le=366 * 86400)]
# Deepest JSON nesting a body may have: far above any real use, far below orjson's 254 on output.
MAX_DEPTH = 32

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


class PollRequest(msgspec.Struct, frozen=True):
    site_id: SiteId
    user: User
    device_id: DeviceId
    user_hash: UserHash | None = None
    wait: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 0


class EventReport(msgspec.Struct, frozen=True):
    message_id: uuid.UUID
    type: Literal["shown", "action", "dismissed"]
    action: Name | None = None


class EventsRequest(msgspec.Struct, frozen=True):
    site_id: SiteId
    user: User
    device_id: DeviceId
    events: Annotated[list[EventReport], msgspec.Meta(min_length=1, max_length=100)]
    user_hash: UserHash | None = None
    # Recorded with the workspace's first `shown` (setup status); None: derived from the request.
    platform: Literal["web", "ios", "android", "other"] | None = None


class DeviceIdentifyRequest(msgspec.Struct, frozen=True):
    site_id: SiteId
    user: User
    attributes: dict[str, Any] = {}
    device_id: DeviceId | None = None
    user_hash: UserHash | None = None


class Recipient(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: User | None = None
    email: Email | None = None


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


class SendRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Exactly one of `content` and `template_id`; `data` is `{{ data.* }}` in the templates."""

    to: Recipient
    content: Content | None = None
    template_id: uuid.UUID | None = None
    data: dict[str, Any] = {}
    strict: bool = False
    properties: dict[str, Any] = {}
    priority: Annotated[int, msgspec.Meta(ge=-1000, le=1000)] = 0
    persistent: bool = False
    expires_at: datetime | Annotated[int, msgspec.Meta(ge=0, le=2**40)] | None = None
    ttl_s: Seconds | None = None
    campaign: Annotated[str, msgspec.Meta(min_length=1, max_length=255)] | None = None


class TemplateRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    content: Content
    properties: dict[str, Any] = {}


class TestMessageRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    __test__ = False  # not a pytest test class, whatever its name

    to: Recipient


class AudienceSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    ids: Annotated[list[User], msgspec.Meta(min_length=1, max_length=10_000)] | None = None
    emails: Annotated[list[Email], msgspec.Meta(min_length=1, max_length=10_000)] | None = None
    all: bool = False
    # Any JSON: gateway.filters validates it, so that every mistake in it is `invalid_filter`.
    filter: Any | msgspec.UnsetType = msgspec.UNSET


class BroadcastRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    audience: AudienceSpec
    content: Content
    properties: dict[str, Any] = {}
    priority: Annotated[int, msgspec.Meta(ge=-1000, le=1000)] = 0
    persistent: bool = False
    expires_at: datetime | Annotated[int, msgspec.Meta(ge=0, le=2**40)] | None = None
    ttl_s: Seconds | None = None
    campaign: Annotated[str, msgspec.Meta(min_length=1, max_length=255)] | None = None
    # Liquid: `data` is the templates' `data`; `strict` makes a missing variable an error.
    data: dict[str, Any] | None = None
    strict: bool = False


class IntervalsPatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    active_s: Annotated[int, msgspec.Meta(ge=1, le=86400)] | None = None
    inactive_s: Annotated[int, msgspec.Meta(ge=1, le=86400)] | None = None
    low_s: Annotated[int, msgspec.Meta(ge=1, le=86400)] | None = None
    recent_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None


class WorkspacePatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    in_app_enabled: bool | None = None
    identity_mode: Literal["off", "optional", "required"] | None = None
    intervals: IntervalsPatch | None = None
    lease_s: Annotated[int, msgspec.Meta(ge=5, le=86400)] | None = None


# ----- event triggers and tracked events -----


class TriggerMessage(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A trigger's message: `content`, or a stored template's id; `data` is `{{ data.* }}` in it."""

    content: Content | None = None
    template_id: uuid.UUID | None = None
    data: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    priority: Annotated[int, msgspec.Meta(ge=-1000, le=1000)] = 0
    persistent: bool = False
    ttl_s: Seconds | None = None
    campaign: Annotated[str, msgspec.Meta(min_length=1, max_length=255)] | None = None
    strict: bool = False


class TriggerRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    event: Name
    message: TriggerMessage
    filter: dict[str, Any] | None = None
    reentry: Literal["every_time", "once"] = "every_time"


class PersonEventRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Name
    data: dict[str, Any] | None = None


class TrackRequest(msgspec.Struct, frozen=True):
    site_id: SiteId
    user: User
    name: Name
    data: dict[str, Any] | None = None
    device_id: DeviceId | None = None
    user_hash: UserHash | None = None


def parse_object(body: bytes) -> dict[str, Any]:
    """A JSON object from a body; orjson rejects bad JSON and bad UTF-8 alike."""
    if not body:
        raise BadRequest("the request body is empty; send a JSON object", code="empty_body")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}", code="malformed_json") from None
    if not isinstance(value, dict):
        raise Unprocessable(f"expected a JSON object, got {type(value).__name__}", code="invalid_fields")
    # Only an escaped \u0000 can put NUL in a string (a raw one is invalid JSON), and only a body
    # with more brackets than the limit can nest too deep: typical bodies skip the walk.
    if b"\\u0000" in body or body.count(b"{") + body.count(b"[") > MAX_DEPTH:
        _check_tree(value, "$", 1)
    return value


def _check_tree(value: Any, path: str, depth: int) -> None:
    """PostgreSQL text and jsonb cannot hold NUL, and orjson writes at most 254 levels: refuse both."""
    if isinstance(value, str):
        if "\x00" in value:
            raise Unprocessable(f"strings cannot contain the NUL character (\\u0000) - at `{path}`")
    elif isinstance(value, dict | list):
        if depth > MAX_DEPTH:
            raise Unprocessable(f"the JSON nests deeper than {MAX_DEPTH} levels - at `{path}`")
        if isinstance(value, list):
            for index, item in enumerate(value):
                _check_tree(item, f"{path}[{index}]", depth + 1)
            return
        for key, item in value.items():
            if "\x00" in key:
                raise Unprocessable(f"keys cannot contain the NUL character (\\u0000) - at `{path}`")
            _check_tree(item, f"{path}.{key}", depth + 1)


def parse_body(body: bytes, kind: type[T]) -> T:
    """Parse and validate a body into `kind`, or raise a 400/422 naming the field."""
    value = parse_object(body)
    try:
        result = msgspec.convert(value, kind, strict=True)
    except msgspec.ValidationError as exc:
        raise Unprocessable(str(exc)) from None
    _check(result)
    return result


def _check(request: object) -> None:
    """Rules one field's type cannot express."""
    if isinstance(request, SendRequest | TestMessageRequest):
        if (request.to.id is None) == (request.to.email is None):
            raise Unprocessable("`to` needs exactly one of `id` or `email` - at `$.to`")
    if isinstance(request, SendRequest):
        if (request.content is None) == (request.template_id is None):
            raise Unprocessable("give exactly one of `content` or `template_id`")
        _check_message_fields(request)
    if isinstance(request, TemplateRequest):
        _check_content(request.content)
    if isinstance(request, BroadcastRequest):
        audience = request.audience
        chosen = [audience.ids is not None, audience.emails is not None, audience.all,
                  audience.filter is not msgspec.UNSET]
        if sum(chosen) != 1:
            raise Unprocessable(
                "`audience` needs exactly one of `ids`, `emails`, `all: true` or `filter` - at `$.audience`"
            )
        _check_message_fields(request)
    if isinstance(request, EventsRequest):
        for i, event in enumerate(request.events):
            if event.type == "action" and event.action is None:
                raise Unprocessable(f"an action event needs `action`, the action's name - at `$.events[{i}]`")


def _check_content(content: Content) -> None:
    if content.title is None and content.body is None:
        raise Unprocessable("content needs a `title` or a `body` - at `$.content`")
    if content.layout == "inline" and content.element_id is None:
        raise Unprocessable("an inline message needs `element_id` - at `$.content.element_id`")


def _check_message_fields(request: SendRequest | BroadcastRequest) -> None:
    if request.content is not None:
        _check_content(request.content)
    if request.expires_at is not None and request.ttl_s is not None:
        raise Unprocessable("give `expires_at` or `ttl_s`, not both")
    if isinstance(request.expires_at, datetime) and request.expires_at.tzinfo is None:
        raise Unprocessable("`expires_at` needs a time zone, e.g. 2026-12-31T00:00:00Z - at `$.expires_at`")


def is_email(text: str) -> bool:
    return len(text) <= 254 and _EMAIL.match(text) is not None
