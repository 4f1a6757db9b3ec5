"""People in the server API: identify a person, read their queue."""

from __future__ import annotations

from aiohttp import web

from ..core import people
from .keys import CLOCK, POOL, WORKSPACE
from .params import path_person_id
from .schemas import parse_object
from .views import json_response, person_view, server_message

__all__ = ["identify", "list_person_messages"]


async def identify(request: web.Request) -> web.Response:
    key = path_person_id(request)
    attributes = parse_object(await request.read())
    person = await people.identify_person(request.app[POOL], request[WORKSPACE].id, key, attributes)
    return json_response(person_view(person))


async def list_person_messages(request: web.Request) -> web.Response:
    person, messages = await people.person_messages(
        request.app[POOL], request[WORKSPACE].id, path_person_id(request), by=request.query.get("by", "id"),
        now=request.app[CLOCK].now(),
    )
    return json_response({"person": person_view(person), "messages": [server_message(m) for m in messages]})
