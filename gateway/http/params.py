"""What handlers read from a request besides its body: ids in the path and the `Idempotency-Key`."""

from __future__ import annotations

import hashlib
import re
import uuid

import orjson
from aiohttp import web

from storage import Idempotency

from ..errors import ErrorCode, NotFound, Unprocessable
from .schemas import parse_object

__all__ = ["idempotency_of", "path_person_id", "path_uuid"]

_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_UNKNOWN = {
    "message": ErrorCode.UNKNOWN_MESSAGE,
    "broadcast": ErrorCode.UNKNOWN_BROADCAST,
    "template": ErrorCode.UNKNOWN_TEMPLATE,
    "trigger": ErrorCode.UNKNOWN_TRIGGER,
}


def path_uuid(request: web.Request, thing: str) -> uuid.UUID:
    """`{id}` as a UUID; anything else names no `thing` (404 `unknown_<thing>`)."""
    try:
        return uuid.UUID(request.match_info["id"])
    except ValueError:
        raise NotFound(f"no {thing} has this id", code=_UNKNOWN[thing]) from None


def path_person_id(request: web.Request) -> str:
    """`{id}` as a person's id: 1 to 255 characters, no NUL (PostgreSQL text cannot hold it)."""
    key = request.match_info["id"]
    if not 1 <= len(key) <= 255:
        raise Unprocessable("a person id has 1 to 255 characters")
    if "\x00" in key:
        raise Unprocessable("a person id cannot contain the NUL character")
    return key


def idempotency_of(request: web.Request, raw_body: bytes) -> Idempotency | None:
    """The `Idempotency-Key` header and a digest of the body it protects (key order ignored)."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not _IDEMPOTENCY_KEY.match(key):
        raise Unprocessable(
            "`Idempotency-Key` has 1 to 255 printable ASCII characters", code=ErrorCode.INVALID_IDEMPOTENCY_KEY
        )
    canonical = orjson.dumps(parse_object(raw_body), option=orjson.OPT_SORT_KEYS)
    return Idempotency(key, hashlib.sha256(canonical).digest())
