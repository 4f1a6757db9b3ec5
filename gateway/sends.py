"""What single sends and broadcasts share: content, expiry and idempotency from a request;
and the single send itself, personalized per person."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from aiohttp import web

import storage
from storage import ContentSource, Person, SendOutcome

from .errors import Unprocessable
from .keys import CLOCK
from .personalize import compile_content, customer_of
from .schemas import Content, SendRequest, parse_object

__all__ = ["DEFAULT_TTL_S", "content_of", "expiry_of", "idempotency_of", "personalized", "send_to_person"]

DEFAULT_TTL_S = 30 * 86400
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def content_of(content: Content) -> dict[str, Any]:
    """The stored content: every field present, so devices see one shape."""
    return {
        "title": content.title,
        "body": content.body,
        "image_url": content.image_url,
        "actions": [{"name": a.name, "label": a.label, "url": a.url} for a in content.actions],
        "layout": content.layout,
        "element_id": content.element_id,
    }


def expiry_of(
    request: web.Request, expires_at: datetime | int | None, ttl_s: int | None
) -> tuple[datetime | None, int]:
    """`expires_at` (a time, or Unix seconds) or, when absent, `ttl_s` (default 30 days); never in the past."""
    if isinstance(expires_at, int):
        expires_at = datetime.fromtimestamp(expires_at, UTC)
    now = request.app[CLOCK].now() or datetime.now(UTC)
    if expires_at is not None and expires_at <= now:
        raise Unprocessable(
            "`expires_at` is in the past; the message could never be delivered", code="expires_at_in_past"
        )
    return expires_at, ttl_s or DEFAULT_TTL_S


def idempotency_of(request: web.Request, raw_body: bytes) -> tuple[str | None, bytes | None]:
    """The `Idempotency-Key` header and a digest of the body it protects (key order ignored)."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None, None
    if not _IDEMPOTENCY_KEY.match(key):
        raise Unprocessable(
            "`Idempotency-Key` has 1 to 255 printable ASCII characters", code="invalid_idempotency_key"
        )
    canonical = orjson.dumps(parse_object(raw_body), option=orjson.OPT_SORT_KEYS)
    return key, hashlib.sha256(canonical).digest()


def personalized(content: dict[str, Any], *, data: dict[str, Any], strict: bool) -> ContentSource:
    """The content to store or, when it holds Liquid, a function rendering it for a person.

    Templates parse here, before any database work: a broken one is a 422 at once.
    """
    compiled = compile_content(content, strict=strict)
    if not compiled.templates:
        return content

    def render(person: Person) -> dict[str, Any]:
        return compiled.render({"customer": customer_of(person), "data": data})

    return render


async def send_to_person(
    pool: asyncpg.Pool,
    workspace_id: int,
    body: SendRequest,
    *,
    expires_at: datetime | None,
    ttl_s: int,
    idempotency_key: str | None,
    idempotency_hash: bytes | None,
    now: datetime | None,
) -> SendOutcome:
    """POST /v1/messages: the given content or a stored template's, rendered for the person.

    A template's properties are the defaults under the send's own.
    """
    if body.template_id is not None:
        template = await storage.get_template(pool, workspace_id, body.template_id)
        if template is None:
            raise Unprocessable(
                "no template has this id in this workspace - at `$.template_id`", code="unknown_template"
            )
        content, properties = template.content, {**template.properties, **body.properties}
    else:
        assert body.content is not None
        content, properties = content_of(body.content), body.properties
    return await storage.send_message(
        pool,
        workspace_id,
        external_id=body.to.id,
        email=body.to.email,
        content=personalized(content, data=body.data, strict=body.strict),
        properties=properties,
        priority=body.priority,
        persistent=body.persistent,
        campaign=body.campaign,
        expires_at=expires_at,
        ttl_s=ttl_s,
        idempotency_key=idempotency_key,
        idempotency_hash=idempotency_hash,
        now=now,
        template_id=body.template_id,
    )
