"""Request bodies as typed structs: parse with orjson, validate with msgspec, fail with a 4xx.

msgspec was chosen over hand-written checks and pydantic: it validates the already-parsed dict
in microseconds (the poll path runs it on every request) and names the failing field
(`Expected int, got str - at $.priority`), which becomes the error message as is.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

import msgspec
import orjson

from storage import NewMessage

from ..core import sends
from ..core.batches import MAX_BATCH
from ..core.broadcasts import AudienceChoice
from ..core.content import Action, Content, check_content, stored_content
from ..core.people import SERVER_ONLY_ATTRIBUTES
from ..errors import BadRequest, ErrorCode, Unprocessable
from .wording import validation_message

__all__ = [
    "Action",
    "AudienceSpec",
    "BatchEnvelope",
    "BatchMessage",
    "BatchSendRequest",
    "BroadcastRequest",
    "Content",
    "DeviceIdentifyRequest",
    "EventReport",
    "EventsRequest",
    "IntervalsPatch",
    "LimitSpec",
    "MessageFields",
    "PersonEventRequest",
    "PollRequest",
    "RateLimitsPatch",
    "Recipient",
    "RotateRequest",
    "SendRequest",
    "TemplateRequest",
    "TestMessageRequest",
    "TrackRequest",
    "TriggerMessage",
    "TriggerRequest",
    "WorkspacePatch",
    "check_data_size",
    "parse_body",
    "parse_object",
    "parse_poll",
    "parse_value",
]

T = TypeVar("T")

SiteId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
User = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
DeviceId = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]
UserHash = Annotated[str, msgspec.Meta(max_length=128)]
# The visitor id the web SDK keeps before `identify`: random, so that no one guesses another's.
AnonymousId = Annotated[str, msgspec.Meta(pattern=r"^anon_[A-Za-z0-9_-]{16,64}$")]
# A signed user token (JWT); far above a token with a handful of claims, far below the body limit.
UserToken = Annotated[str, msgspec.Meta(max_length=4096)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Email = Annotated[str, msgspec.Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
Seconds = Annotated[int, msgspec.Meta(ge=1, le=366 * 86400)]
Priority = Annotated[int, msgspec.Meta(ge=-1000, le=1000)]
Campaign = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
# The last second of year 9999 (UTC): the largest time Python's datetime can hold.
MAX_UNIX_SECONDS = 253_402_300_799
# Deepest JSON nesting a body may have: far above any real use, far below orjson's 254 on output.
MAX_DEPTH = 32


class EventReport(msgspec.Struct, frozen=True):
    message_id: uuid.UUID
    type: Literal["shown", "action", "dismissed"]
    action: Name | None = None


class PollRequest(msgspec.Struct, frozen=True):
    """Exactly one of `user` (a person, with proof as the workspace asks) and `anonymous_id` (a visitor)."""

    site_id: SiteId
    device_id: DeviceId
    user: User | None = None
    anonymous_id: AnonymousId | None = None
    user_hash: UserHash | None = None
    user_token: UserToken | None = None
    wait: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 0
    # Reports applied before the claim (acknowledge on the next poll), as /v1/events takes them.
    events: Annotated[list[EventReport], msgspec.Meta(max_length=100)] = []
    platform: Literal["web", "ios", "android", "other"] | None = None


_POLL_DECODER = msgspec.json.Decoder(PollRequest, strict=True)


class EventsRequest(msgspec.Struct, frozen=True):
    """Exactly one of `user` and `anonymous_id`, as in a poll."""

    site_id: SiteId
    device_id: DeviceId
    events: Annotated[list[EventReport], msgspec.Meta(min_length=1, max_length=100)]
    user: User | None = None
    anonymous_id: AnonymousId | None = None
    user_hash: UserHash | None = None
    user_token: UserToken | None = None
    # Recorded with the workspace's first `shown` (setup status); None: derived from the request.
    platform: Literal["web", "ios", "android", "other"] | None = None


class DeviceIdentifyRequest(msgspec.Struct, frozen=True):
    site_id: SiteId
    user: User
    attributes: dict[str, Any] = {}
    device_id: DeviceId | None = None
    user_hash: UserHash | None = None
    user_token: UserToken | None = None
    # The visitor this device polled as until now: merged into the person (decision 0023).
    anonymous_id: AnonymousId | None = None


class Recipient(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: User | None = None
    email: Email | None = None

    def recipient(self) -> sends.Recipient:
        return sends.Recipient(id=self.id, email=self.email)


class MessageFields(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The fields every way of sending shares; each request adds its own (`to`, `audience`, …)."""

    properties: dict[str, Any] = {}
    priority: Priority = 0
    persistent: bool = False
    campaign: Campaign | None = None
    # Liquid: `data` is `{{ data.* }}` in the templates; `strict` makes a missing variable an error.
    strict: bool = False

    def personalization(self, data: dict[str, Any] | None) -> sends.Personalization:
        return sends.Personalization(data=data, strict=self.strict)


class TimedMessageFields(MessageFields, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A message sent now: it expires at `expires_at` (a time, or Unix seconds), or `ttl_s` after it is queued."""

    expires_at: datetime | Annotated[int, msgspec.Meta(ge=0, le=MAX_UNIX_SECONDS)] | None = None
    ttl_s: Seconds | None = None

    def new_message(self, content: Content | None, template_id: uuid.UUID | None = None) -> NewMessage:
        expires_at = self.expires_at
        if isinstance(expires_at, int):
            expires_at = datetime.fromtimestamp(expires_at, UTC)
        return NewMessage(
            content=stored_content(content) if content is not None else None,
            properties=self.properties,
            priority=self.priority,
            persistent=self.persistent,
            campaign=self.campaign,
            expires_at=expires_at,
            ttl_s=self.ttl_s or 0,
            template_id=template_id,
        )


class SendRequest(TimedMessageFields, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Exactly one of `content` and `template_id`."""

    to: Recipient
    content: Content | None = None
    template_id: uuid.UUID | None = None
    data: dict[str, Any] = {}


# As the `Idempotency-Key` header of a single send: 1 to 255 printable ASCII characters.
IdempotencyKey = Annotated[str, msgspec.Meta(pattern=r"^[\x21-\x7e]{1,255}$")]


class BatchMessage(SendRequest, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One message of a batch: a single send's body, with its own `idempotency_key`."""

    idempotency_key: IdempotencyKey | None = None


class BatchSendRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """POST /v1/messages/batch as documented: 1 to 1,000 messages."""

    messages: Annotated[list[BatchMessage], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


class BatchEnvelope(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """POST /v1/messages/batch as first parsed: each message is then validated on its own, so
    that one bad message gets its own error and the others are still sent."""

    messages: Annotated[list[Any], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


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
    # Any JSON: gateway.core.filters validates it, so that every mistake in it is `invalid_filter`.
    filter: Any | msgspec.UnsetType = msgspec.UNSET
    # Everyone who visits, anonymous or identified: a copy per person as they poll (decision 0023).
    visitors: bool = False

    def choice(self) -> AudienceChoice:
        if self.visitors:
            return AudienceChoice(visitors=True)
        if self.filter is not msgspec.UNSET:
            return AudienceChoice(has_filter=True, filter=self.filter)
        return AudienceChoice(ids=tuple(self.ids or ()), emails=tuple(self.emails or ()), everyone=self.all)


class EveryHours(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """At most one copy per person in this many hours (up to a year)."""

    every_hours: Annotated[int, msgspec.Meta(ge=1, le=366 * 24)]


class BroadcastRequest(TimedMessageFields, frozen=True, forbid_unknown_fields=True, kw_only=True):
    audience: AudienceSpec
    content: Content
    data: dict[str, Any] | None = None
    # Only with `audience: {"visitors": true}`: how often a person gets it, and until when.
    # "once" or {"every_hours": N}; a string is checked in `_check_visit_fields`, for a clearer message.
    frequency: Annotated[str, msgspec.Meta(max_length=16)] | EveryHours | None = None
    ends_at: datetime | Annotated[int, msgspec.Meta(ge=0, le=MAX_UNIX_SECONDS)] | None = None

    def audience_choice(self) -> AudienceChoice:
        """The audience, with the visit rule's frequency and end when it is for visitors."""
        if not self.audience.visitors:
            return self.audience.choice()
        ends_at = self.ends_at
        if isinstance(ends_at, int):
            ends_at = datetime.fromtimestamp(ends_at, UTC)
        every_hours = self.frequency.every_hours if isinstance(self.frequency, EveryHours) else None
        return AudienceChoice(visitors=True, every_hours=every_hours, ends_at=ends_at)


class IntervalsPatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    active_s: Annotated[int, msgspec.Meta(ge=1, le=86400)] | None = None
    inactive_s: Annotated[int, msgspec.Meta(ge=1, le=86400)] | None = None
    low_s: Annotated[int, msgspec.Meta(ge=1, le=86400)] | None = None
    recent_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None


class LimitSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One rate limit: `rate_per_s` on average, up to `burst` at once."""

    rate_per_s: Annotated[float, msgspec.Meta(gt=0, le=1_000_000)]
    burst: Annotated[float, msgspec.Meta(ge=1, le=10_000_000)]


class RateLimitsPatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A workspace's own limits; null puts one back to the server's, absent leaves it as it is."""

    site: LimitSpec | msgspec.UnsetType | None = msgspec.UNSET
    person: LimitSpec | msgspec.UnsetType | None = msgspec.UNSET
    events: LimitSpec | msgspec.UnsetType | None = msgspec.UNSET
    api_key: LimitSpec | msgspec.UnsetType | None = msgspec.UNSET

    def changes(self) -> dict[str, dict[str, float] | None]:
        """The limits given, as stored: a null one is removed."""
        return {
            name: None if value is None else {"rate_per_s": value.rate_per_s, "burst": value.burst}
            for name in self.__struct_fields__
            if (value := getattr(self, name)) is not msgspec.UNSET
        }


class WorkspacePatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    in_app_enabled: bool | None = None
    identity_mode: Literal["off", "optional", "required"] | None = None
    intervals: IntervalsPatch | None = None
    lease_s: Annotated[int, msgspec.Meta(ge=5, le=86400)] | None = None
    rate_limits: RateLimitsPatch | None = None
    retention_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None
    # Attribute names devices may write for filters and templates to read; [] reads none.
    device_attributes: Annotated[list[Name], msgspec.Meta(max_length=100)] | msgspec.UnsetType = msgspec.UNSET

    identity_hash_allowed: bool | None = None
    # A minute to 30 days: the longest a signed user token may live.
    max_token_lifetime_s: Annotated[int, msgspec.Meta(ge=60, le=30 * 86400)] | None = None

    def device_attribute_names(self) -> list[str] | None:
        """The names to store, each once, in the order given; None: leave the setting as it is."""
        if isinstance(self.device_attributes, msgspec.UnsetType):
            return None
        return list(dict.fromkeys(self.device_attributes))


class RotateRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How long the credentials being replaced keep working: 0 (at once) to 30 days."""

    grace_s: Annotated[int, msgspec.Meta(ge=0, le=30 * 86400)]


# ----- event triggers and tracked events -----


class TriggerMessage(MessageFields, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A trigger's message: `content`, or a stored template's id; it expires `ttl_s` after it is queued."""

    content: Content | None = None
    template_id: uuid.UUID | None = None
    data: dict[str, Any] = {}
    ttl_s: Seconds | None = None

    def new_message(self) -> NewMessage:
        return NewMessage(
            content=stored_content(self.content) if self.content is not None else None,
            properties=self.properties,
            priority=self.priority,
            persistent=self.persistent,
            campaign=self.campaign,
            ttl_s=self.ttl_s or 0,
            template_id=self.template_id,
        )


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
    user_token: UserToken | None = None


_JSON_KINDS = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "true or false",
               type(None): "null"}


def parse_object(body: bytes) -> dict[str, Any]:
    """A JSON object from a body; orjson rejects bad JSON and bad UTF-8 alike."""
    if not body:
        raise BadRequest("the request body is empty; send a JSON object", code=ErrorCode.EMPTY_BODY)
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}", code=ErrorCode.MALFORMED_JSON) from None
    if not isinstance(value, dict):
        raise Unprocessable(
            f"the body must be a JSON object ({{...}}), not {_JSON_KINDS.get(type(value), 'this value')}",
            code=ErrorCode.INVALID_FIELDS,
        )
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
    return parse_value(parse_object(body), kind)


def parse_poll(body: bytes) -> PollRequest:
    """A poll's body, decoded straight into its type: the most common request skips the dict that
    `parse_body` builds and walks. A body the direct decoder refuses, or one that needs
    `parse_object`'s walk (an escaped NUL, deep nesting), goes through `parse_body`, so every
    error reads as it always did (tests/unit/test_schemas.py compares the two)."""
    if b"\\u0000" not in body and body.count(b"{") + body.count(b"[") <= MAX_DEPTH:
        try:
            request = _POLL_DECODER.decode(body)
        except msgspec.MsgspecError:
            pass
        else:
            _check_device_request(request)
            return request
    return parse_body(body, PollRequest)


def parse_value(value: Any, kind: type[T]) -> T:
    """Validate already parsed JSON into `kind` (a batch's messages one by one), or raise a 422 naming the field."""
    try:
        result = msgspec.convert(value, kind, strict=True)
    except msgspec.ValidationError as exc:
        raise Unprocessable(validation_message(str(exc), kind)) from None
    _check(result)
    return result


def _check(request: object) -> None:
    """Rules one field's type cannot express."""
    if type(request) is PollRequest:  # the most common body by far: its two rules, and no other test
        _check_device_request(request)
        return
    if isinstance(request, SendRequest | TestMessageRequest):
        if (request.to.id is None) == (request.to.email is None):
            raise Unprocessable("`to` needs exactly one of `id` or `email` - at `$.to`")
    if isinstance(request, SendRequest):
        if (request.content is None) == (request.template_id is None):
            raise Unprocessable("give exactly one of `content` or `template_id`")
        _check_timed_fields(request, request.content)
    if isinstance(request, TemplateRequest):
        check_content(request.content)
    if isinstance(request, BroadcastRequest):
        audience = request.audience
        chosen = [audience.ids is not None, audience.emails is not None, audience.all,
                  audience.filter is not msgspec.UNSET, audience.visitors]
        if sum(chosen) != 1:
            raise Unprocessable(
                "`audience` needs exactly one of `ids`, `emails`, `all: true`, `filter` or `visitors: true`"
                " - at `$.audience`"
            )
        _check_timed_fields(request, request.content)
        _check_visit_fields(request)
    if isinstance(request, TriggerRequest):
        message = request.message
        if (message.content is None) == (message.template_id is None):
            raise Unprocessable("`message` needs exactly one of `content` or `template_id` - at `$.message`")
        if message.content is not None:
            check_content(message.content, "$.message.content")
    if isinstance(request, WorkspacePatch) and not isinstance(request.device_attributes, msgspec.UnsetType):
        for i, name in enumerate(request.device_attributes):
            if name in SERVER_ONLY_ATTRIBUTES:
                raise Unprocessable(f"`{name}` is only ever set by your backend - at `$.device_attributes[{i}]`")
    if isinstance(request, EventsRequest | PollRequest):
        _check_device_request(request)


def _check_device_request(request: PollRequest | EventsRequest) -> None:
    if (request.user is None) == (request.anonymous_id is None):
        raise Unprocessable(
            "give exactly one of `user` (the person the app identified) or `anonymous_id` (a visitor before"
            " identify)"
        )
    for i, event in enumerate(request.events):
        if event.type == "action" and event.action is None:
            raise Unprocessable(f"an action event needs `action`, the action's name - at `$.events[{i}]`")


def check_data_size(body: bytes, data: dict[str, Any] | None, max_bytes: int) -> None:
    """An event's `data` is stored with every event: cap it, in bytes of compact JSON."""
    if data is None or len(body) <= max_bytes:  # data is part of the body: a small body cannot hold too much
        return
    size = len(orjson.dumps(data))
    if size > max_bytes:
        raise Unprocessable(f"`data` is {size} bytes of JSON; at most {max_bytes} are accepted - at `$.data`")


def _check_visit_fields(request: BroadcastRequest) -> None:
    """`frequency` and `ends_at` belong to a broadcast to visitors, which has no `expires_at`."""
    if isinstance(request.frequency, str) and request.frequency != "once":
        raise Unprocessable('`frequency` is "once" or {"every_hours": N} - at `$.frequency`')
    if not request.audience.visitors:
        for name in ("frequency", "ends_at"):
            if getattr(request, name) is not None:
                raise Unprocessable(f"`{name}` is only for `audience: {{\"visitors\": true}}` - at `$.{name}`")
        return
    for name in ("expires_at", "ttl_s"):
        if getattr(request, name) is not None:
            raise Unprocessable(
                f"a broadcast to visitors ends at `ends_at`, and each copy expires then: leave out `{name}`"
                f" - at `$.{name}`"
            )
    if isinstance(request.ends_at, datetime):
        _check_instant(request.ends_at, "ends_at")


def _check_timed_fields(request: TimedMessageFields, content: Content | None) -> None:
    if content is not None:
        check_content(content)
    if request.expires_at is not None and request.ttl_s is not None:
        raise Unprocessable("give `expires_at` or `ttl_s`, not both")
    if isinstance(request.expires_at, datetime):
        _check_instant(request.expires_at, "expires_at")


def _check_instant(value: datetime, name: str) -> None:
    """A time the database stores as timestamptz: it needs a zone, and must stay within datetime in UTC."""
    if value.tzinfo is None:
        raise Unprocessable(f"`{name}` needs a time zone, e.g. 2026-12-31T00:00:00Z - at `$.{name}`")
    try:
        # An offset can carry a time in year 9999 past the end (or before the start) of datetime.
        value.astimezone(UTC)
    except OverflowError:
        raise Unprocessable(f"`{name}` must be within years 1 to 9999 in UTC - at `$.{name}`") from None
