"""The OpenAPI 3.1 document of every route, built from the route table and the same msgspec
schemas that validate request bodies, so the document cannot drift from what the app accepts.

Success bodies are described as JSON objects (docs/api.md shows them field by field); every
error, whatever its status, has the contract's shape with a code from `ErrorCode`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import msgspec
import orjson
from aiohttp import web

from ..errors import ErrorCode
from .access import Access
from .keys import OPENAPI

__all__ = ["build_document", "document"]

_REF = "#/components/schemas/{name}"
_UUID_PATHS = ("/v1/messages/", "/v1/broadcasts/", "/v1/templates/", "/v1/triggers/")


class RouteRow(Protocol):
    """What the document reads of a route (gateway/http/routes.py `Route`)."""

    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def access(self) -> Access: ...
    @property
    def name(self) -> str: ...
    @property
    def body(self) -> type | None: ...
    @property
    def status(self) -> int: ...
    @property
    def media(self) -> str: ...
    @property
    def handler(self) -> Any: ...


def build_document(routes: Iterable[RouteRow]) -> dict[str, Any]:
    routes = list(routes)
    bodies = [r.body for r in routes if r.body is not None and r.body is not dict]
    schemas, components = msgspec.json.schema_components(bodies, ref_template=_REF)
    by_type = dict(zip(bodies, schemas, strict=True))
    components["Error"] = {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "additionalProperties": False,
                "properties": {
                    "code": {"type": "string", "enum": sorted(code.value for code in ErrorCode)},
                    "message": {"type": "string"},
                },
            }
        },
    }
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation = _operation(route, by_type)
        paths.setdefault(route.path, {})[route.method.lower()] = operation
        if route.access is Access.DEVICE:
            paths[route.path]["options"] = {
                "operationId": route.name.replace(".", "_") + "_preflight",
                "summary": "CORS preflight",
                "tags": ["device"],
                "responses": {"204": {"description": "the browser may send the request"}},
            }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mailslot",
            "version": "1",
            "description": "A self-hosted in-app messaging gateway. docs/api.md describes every endpoint.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation(route: RouteRow, by_type: dict[type, Any]) -> dict[str, Any]:
    doc = (route.handler.__doc__ or "").strip().splitlines()
    operation: dict[str, Any] = {
        "operationId": route.name.replace(".", "_") + "_" + route.method.lower(),
        "summary": doc[0] if doc else route.name,
        "tags": [route.access.value],
        "responses": {
            str(route.status): {"description": "success", "content": {route.media: {"schema": _answer(route)}}},
            "default": {
                "description": "an error, in the contract's shape",
                "content": {"application/json": {"schema": {"$ref": _REF.format(name="Error")}}},
            },
        },
    }
    if route.access is Access.SERVER:
        operation["security"] = [{"apiKey": []}]
    parameters = []
    if "{id}" in route.path:
        is_uuid = route.path.startswith(_UUID_PATHS)
        parameters.append({
            "name": "id", "in": "path", "required": True,
            "schema": {"type": "string", "format": "uuid"} if is_uuid else {"type": "string", "minLength": 1,
                                                                             "maxLength": 255},
        })
    if route.name == "server.person_messages":
        parameters.append({"name": "by", "in": "query", "schema": {"type": "string", "enum": ["id", "email"]}})
    if route.body is not None:
        schema = {"type": "object"} if route.body is dict else by_type[route.body]
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
        if route.name in ("server.send_message", "server.send_broadcast"):
            parameters.append({
                "name": "Idempotency-Key", "in": "header",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x21-\\x7e]+$"},
            })
    if parameters:
        operation["parameters"] = parameters
    return operation


def _answer(route: RouteRow) -> dict[str, Any]:
    if route.media == "application/json":
        return {"type": "object"}
    return {"type": "string"}


async def document(request: web.Request) -> web.Response:
    """This API's OpenAPI 3.1 document."""
    return web.Response(
        body=request.app[OPENAPI], content_type="application/json", headers={"Access-Control-Allow-Origin": "*"}
    )


def encoded(routes: Iterable[RouteRow]) -> bytes:
    """The document as served: built once per app."""
    return orjson.dumps(build_document(routes))
