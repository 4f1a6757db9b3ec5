"""What single sends and broadcasts share: content, expiry and idempotency from a request."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from .errors import Unprocessable
from .keys import CLOCK
from .schemas import Content, parse_object

__all__ = ["DEFAULT_TTL_S", "content_of", "expiry_of", "idempotency_of"]

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
