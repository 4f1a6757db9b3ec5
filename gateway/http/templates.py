"""Stored templates in the server API: create, read, list."""

from __future__ import annotations

from aiohttp import web

from ..core import templates
from ..core.content import stored_content
from .keys import CLOCK, POOL, WORKSPACE
from .params import path_uuid
from .schemas import TemplateRequest, parse_body
from .views import json_response, template_view

__all__ = ["create_template", "get_template", "list_templates"]


async def create_template(request: web.Request) -> web.Response:
    body = parse_body(await request.read(), TemplateRequest)
    template = await templates.create_template(
        request.app[POOL], request[WORKSPACE].id, body.name, stored_content(body.content), body.properties,
        request.app[CLOCK].now(),
    )
    return json_response(template_view(template), status=201)


async def get_template(request: web.Request) -> web.Response:
    template = await templates.get_template(request.app[POOL], request[WORKSPACE].id, path_uuid(request, "template"))
    return json_response(template_view(template))


async def list_templates(request: web.Request) -> web.Response:
    found = await templates.list_templates(request.app[POOL], request[WORKSPACE].id)
    return json_response({"templates": [template_view(t) for t in found]})
