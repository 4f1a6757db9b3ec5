"""The route table: every path, its handlers, and who may call it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from . import broadcasts, device, messages, ops, people, sdk, templates, triggers, workspace
from .access import Access
from .keys import ROUTE_ACCESS

__all__ = ["add_routes"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

DEVICE, SERVER, PUBLIC = Access.DEVICE, Access.SERVER, Access.PUBLIC

# (method, path, handler, access, route name). Device routes also answer OPTIONS (CORS preflight).
ROUTES: tuple[tuple[str, str, Handler, Access, str], ...] = (
    # Device API.
    ("POST", "/v1/poll", device.poll, DEVICE, "device.poll"),
    ("POST", "/v1/events", device.events, DEVICE, "device.events"),
    ("POST", "/v1/identify", device.identify, DEVICE, "device.identify"),
    ("POST", "/v1/track", triggers.track, DEVICE, "device.track"),
    # Server API.
    ("POST", "/v1/messages", messages.send_message, SERVER, "server.send_message"),
    ("GET", "/v1/messages/{id}", messages.get_message, SERVER, "server.message"),
    ("DELETE", "/v1/messages/{id}", messages.recall_message, SERVER, "server.message"),
    ("POST", "/v1/broadcasts", broadcasts.send_broadcast, SERVER, "server.send_broadcast"),
    ("GET", "/v1/broadcasts/{id}", broadcasts.get_broadcast, SERVER, "server.broadcast"),
    ("DELETE", "/v1/broadcasts/{id}", broadcasts.recall_broadcast, SERVER, "server.broadcast"),
    ("POST", "/v1/broadcasts/{id}/resend", broadcasts.resend_broadcast, SERVER, "server.resend_broadcast"),
    ("PUT", "/v1/people/{id}", people.identify, SERVER, "server.identify"),
    ("GET", "/v1/people/{id}/messages", people.list_person_messages, SERVER, "server.person_messages"),
    ("POST", "/v1/people/{id}/events", triggers.record_person_event, SERVER, "server.person_events"),
    ("GET", "/v1/triggers", triggers.list_triggers, SERVER, "server.triggers"),
    ("POST", "/v1/triggers", triggers.create_trigger, SERVER, "server.triggers"),
    ("DELETE", "/v1/triggers/{id}", triggers.disable_trigger, SERVER, "server.trigger"),
    ("GET", "/v1/workspace", workspace.get_workspace, SERVER, "server.workspace"),
    ("PATCH", "/v1/workspace", workspace.patch_workspace, SERVER, "server.workspace"),
    ("POST", "/v1/workspace/api-keys", workspace.rotate_api_key, SERVER, "server.api_keys"),
    ("POST", "/v1/workspace/identity-secrets", workspace.rotate_identity_secret, SERVER, "server.identity_secrets"),
    ("GET", "/v1/templates", templates.list_templates, SERVER, "server.templates"),
    ("POST", "/v1/templates", templates.create_template, SERVER, "server.templates"),
    ("GET", "/v1/templates/{id}", templates.get_template, SERVER, "server.template"),
    ("POST", "/v1/test-message", messages.send_test_message, SERVER, "server.test_message"),
    ("GET", "/v1/workspace/setup", workspace.workspace_setup, SERVER, "server.workspace_setup"),
    # The web SDK and the demo page.
    ("GET", sdk.SDK_PATH, sdk.script, PUBLIC, "sdk.script"),
    ("GET", "/demo", sdk.demo, PUBLIC, "sdk.demo"),
    ("GET", "/demo/setup", sdk.demo_setup, PUBLIC, "sdk.demo_setup"),
    # Operations.
    ("GET", "/healthz", ops.healthz, PUBLIC, "ops.healthz"),
    ("GET", "/readyz", ops.readyz, PUBLIC, "ops.readyz"),
    ("GET", "/metrics", ops.metrics, PUBLIC, "ops.metrics"),
)

# Public pages answer HEAD too (load balancers and uptime checks use it); the API refuses it (405).
_HEAD = {"sdk.script", "sdk.demo", "ops.healthz", "ops.readyz", "ops.metrics"}


def add_routes(app: web.Application) -> None:
    """Register every route and record who may call it."""
    access: dict[web.AbstractRoute, Access] = {}
    resources: dict[str, web.Resource] = {}
    for method, path, handler, who, name in ROUTES:
        resource = resources.get(path)
        if resource is None:
            resource = resources[path] = app.router.add_resource(path, name=name)
        methods = [method]
        if who is DEVICE:
            methods.append("OPTIONS")
        if method == "GET" and name in _HEAD:
            methods.append("HEAD")
        for each in methods:
            access[resource.add_route(each, handler)] = who
    app[ROUTE_ACCESS] = access
