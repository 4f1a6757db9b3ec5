"""Stored templates in the server API: content kept under a name, sent later by id with data.

A template's Liquid is parsed when it is stored, so a broken one is a 422 then, not at a send.
Templates are immutable: a message records the id of the template it was made from.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
from aiohttp import web

import storage
from storage import Template

from .errors import Conflict, NotFound
from .keys import CLOCK, POOL, WORKSPACE
from .paths import path_uuid
from .personalize import compile_content
from .render import json_response
from .schemas import TemplateRequest, parse_body
from .sends import content_of

__all__ = ["create_template", "get_template", "list_templates", "store_template", "template_view"]


def template_view(template: Template) -> dict[str, Any]:
    return {
        "id": str(template.id),
        "name": template.name,
        "content": template.content,
        "properties": template.properties,
        "created_at": template.created_at,
    }


async def store_template(
    pool: asyncpg.Pool, workspace_id: int, body: TemplateRequest, now: datetime | None
) -> Template:
    """Parse the template's Liquid (422 if broken), then store it (409 if the name is taken)."""
    content = content_of(body.content)
    compile_content(content)
    try:
        return await storage.create_template(pool, workspace_id, body.name, content, body.properties, now)
    except storage.Conflict as exc:
        if exc.constraint == "templates_name_key":
            raise Conflict(
                f"this workspace already has a template named {body.name!r}; pick another name",
                code="template_name_taken",
            ) from None
        raise


async def create_template(request: web.Request) -> web.Response:
    body = parse_body(await request.read(), TemplateRequest)
    template = await store_template(request.app[POOL], request[WORKSPACE].id, body, request.app[CLOCK].now())
    return json_response(template_view(template), status=201)


async def get_template(request: web.Request) -> web.Response:
    template_id = path_uuid(request, "template")
    template = await storage.get_template(request.app[POOL], request[WORKSPACE].id, template_id)
    if template is None:
        raise NotFound("no template has this id in this workspace", code="unknown_template")
    return json_response(template_view(template))


async def list_templates(request: web.Request) -> web.Response:
    templates = await storage.list_templates(request.app[POOL], request[WORKSPACE].id)
    return json_response({"templates": [template_view(t) for t in templates]})
