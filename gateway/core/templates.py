"""Stored templates: content kept under a name, sent later by id with data.

A template's Liquid is parsed when it is stored, so a broken one is a 422 then, not at a send.
Templates are immutable: a message records the id of the template it was made from.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

import storage
from storage import Template

from ..errors import Conflict, ErrorCode, NotFound
from .personalize import compile_content

__all__ = ["create_template", "get_template", "list_templates"]


async def create_template(
    pool: asyncpg.Pool, workspace_id: int, name: str, content: dict[str, Any], properties: dict[str, Any],
    now: datetime | None,
) -> Template:
    """Parse the template's Liquid (422 if broken), then store it (409 if the name is taken)."""
    compile_content(content)
    try:
        return await storage.create_template(pool, workspace_id, name, content, properties, now)
    except storage.Conflict as exc:
        if exc.constraint == "templates_name_key":
            raise Conflict(
                f"this workspace already has a template named {name!r}; pick another name",
                code=ErrorCode.TEMPLATE_NAME_TAKEN,
            ) from None
        raise


async def get_template(pool: asyncpg.Pool, workspace_id: int, template_id: uuid.UUID) -> Template:
    template = await storage.get_template(pool, workspace_id, template_id)
    if template is None:
        raise NotFound("no template has this id in this workspace", code=ErrorCode.UNKNOWN_TEMPLATE)
    return template


async def list_templates(pool: asyncpg.Pool, workspace_id: int) -> list[Template]:
    return await storage.list_templates(pool, workspace_id)
