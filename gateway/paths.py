"""Reading ids from a request's path: one rule per kind of id, one error per mistake."""

from __future__ import annotations

import uuid

from aiohttp import web

from .errors import NotFound, Unprocessable

__all__ = ["path_person_id", "path_uuid"]


def path_uuid(request: web.Request, thing: str) -> uuid.UUID:
    """`{id}` as a UUID; anything else names no `thing` (404 `unknown_<thing>`)."""
    try:
        return uuid.UUID(request.match_info["id"])
    except ValueError:
        raise NotFound(f"no {thing} has this id", code=f"unknown_{thing}") from None


def path_person_id(request: web.Request) -> str:
    """`{id}` as a person's id: 1 to 255 characters, no NUL (PostgreSQL text cannot hold it)."""
    key = request.match_info["id"]
    if not 1 <= len(key) <= 255:
        raise Unprocessable("a person id has 1 to 255 characters")
    if "\x00" in key:
        raise Unprocessable("a person id cannot contain the NUL character")
    return key
