"""Stored templates: message content a workspace keeps under a name and sends by id."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from .errors import translate_errors
from .pool import Executor
from .sql import queries

__all__ = ["Template", "create_template", "get_template", "list_templates"]


@dataclass(frozen=True, slots=True)
class Template:
    """Content whose text fields are Liquid, rendered per person when a message is sent with it."""

    id: uuid.UUID
    name: str
    content: dict[str, Any]
    properties: dict[str, Any]
    created_at: datetime


def _template(row: asyncpg.Record) -> Template:
    return Template(
        id=row["id"], name=row["name"], content=row["content"], properties=row["properties"],
        created_at=row["created_at"],
    )


@translate_errors
async def create_template(
    db: Executor,
    workspace_id: int,
    name: str,
    content: dict[str, Any],
    properties: dict[str, Any],
    now: datetime | None = None,
) -> Template:
    """Store a template; a name the workspace already uses raises `Conflict("templates_name_key")`."""
    row = await db.fetchrow(queries["create_template"], workspace_id, name, content, properties, now)
    return _template(row)


@translate_errors
async def get_template(db: Executor, workspace_id: int, template_id: uuid.UUID) -> Template | None:
    row = await db.fetchrow(queries["get_template"], workspace_id, template_id)
    return _template(row) if row else None


@translate_errors
async def list_templates(db: Executor, workspace_id: int) -> list[Template]:
    """Every template of the workspace, newest first."""
    return [_template(r) for r in await db.fetch(queries["list_templates"], workspace_id)]
