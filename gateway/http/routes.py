"""The route table: every path, its handlers, and who may call it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import NamedTuple

from aiohttp import web

from . import broadcasts, device, home, messages, openapi, ops, people, sdk, templates, triggers, workspace
from . import schemas as s
from .access import Access
from .console import assets as console_assets
from .console import broadcasts as console_broadcasts
from .console import compose as console_compose
from .console import messages as console_messages
from .console import person as console_person
from .console import session as console_session
from .console import settings as console_settings
from .console import triggers as console_triggers
from .keys import OPENAPI, ROUTE_ACCESS

__all__ = ["add_routes"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

DEVICE, SERVER, PUBLIC, CONSOLE = Access.DEVICE, Access.SERVER, Access.PUBLIC, Access.CONSOLE
HTML = "text/html"

class Route(NamedTuple):
    """One row of the table: who may call it, and what it reads and answers (for /openapi.json)."""

    method: str
    path: str
    handler: Handler
    access: Access
    name: str
    body: type | None = None  # the request schema the handler validates its body with
    status: int = 200  # the status of a successful answer
    media: str = "application/json"  # what a successful answer is


JSON_OBJECT = dict  # a body that is any JSON object (a person's attributes)

# Device routes also answer OPTIONS (CORS preflight).
ROUTES: tuple[Route, ...] = (
    # Device API.
    Route("POST", "/v1/poll", device.poll, DEVICE, "device.poll", s.PollRequest),
    Route("POST", "/v1/events", device.events, DEVICE, "device.events", s.EventsRequest),
    Route("POST", "/v1/identify", device.identify, DEVICE, "device.identify", s.DeviceIdentifyRequest),
    Route("POST", "/v1/track", triggers.track, DEVICE, "device.track", s.TrackRequest),
    # Server API.
    Route("POST", "/v1/messages", messages.send_message, SERVER, "server.send_message", s.SendRequest, 201),
    Route("POST", messages.BATCH_PATH, messages.send_batch, SERVER, "server.send_batch", s.BatchSendRequest),
    Route("GET", "/v1/messages/{id}", messages.get_message, SERVER, "server.message"),
    Route("DELETE", "/v1/messages/{id}", messages.recall_message, SERVER, "server.message"),
    Route("POST", "/v1/broadcasts", broadcasts.send_broadcast, SERVER, "server.send_broadcast", s.BroadcastRequest,
          201),
    Route("GET", "/v1/broadcasts/{id}", broadcasts.get_broadcast, SERVER, "server.broadcast"),
    Route("DELETE", "/v1/broadcasts/{id}", broadcasts.recall_broadcast, SERVER, "server.broadcast"),
    Route("POST", "/v1/broadcasts/{id}/resend", broadcasts.resend_broadcast, SERVER, "server.resend_broadcast"),
    Route("PUT", "/v1/people/{id}", people.identify, SERVER, "server.identify", JSON_OBJECT),
    Route("GET", "/v1/people/{id}/messages", people.list_person_messages, SERVER, "server.person_messages"),
    Route("POST", "/v1/people/{id}/events", triggers.record_person_event, SERVER, "server.person_events",
          s.PersonEventRequest),
    Route("GET", "/v1/triggers", triggers.list_triggers, SERVER, "server.triggers"),
    Route("POST", "/v1/triggers", triggers.create_trigger, SERVER, "server.triggers", s.TriggerRequest, 201),
    Route("DELETE", "/v1/triggers/{id}", triggers.disable_trigger, SERVER, "server.trigger"),
    Route("GET", "/v1/workspace", workspace.get_workspace, SERVER, "server.workspace"),
    Route("PATCH", "/v1/workspace", workspace.patch_workspace, SERVER, "server.workspace", s.WorkspacePatch),
    Route("POST", "/v1/workspace/api-keys", workspace.rotate_api_key, SERVER, "server.api_keys", s.RotateRequest, 201),
    Route("POST", "/v1/workspace/identity-secrets", workspace.rotate_identity_secret, SERVER,
          "server.identity_secrets", s.RotateRequest, 201),
    Route("GET", "/v1/templates", templates.list_templates, SERVER, "server.templates"),
    Route("POST", "/v1/templates", templates.create_template, SERVER, "server.templates", s.TemplateRequest, 201),
    Route("GET", "/v1/templates/{id}", templates.get_template, SERVER, "server.template"),
    Route("POST", "/v1/test-message", messages.send_test_message, SERVER, "server.test_message",
          s.TestMessageRequest, 201),
    Route("GET", "/v1/workspace/setup", workspace.workspace_setup, SERVER, "server.workspace_setup"),
    # Pages: where a browser lands, the web SDK and the demo page.
    Route("GET", "/", home.home, PUBLIC, "home"),
    Route("GET", sdk.SDK_PATH, sdk.script, PUBLIC, "sdk.script", media="application/javascript"),
    Route("GET", sdk.PLUGIN_PATH, sdk.plugin_script, PUBLIC, "sdk.plugin", media="application/javascript"),
    Route("GET", "/demo", sdk.demo, PUBLIC, "sdk.demo", media="text/html"),
    Route("GET", "/demo/setup", sdk.demo_setup, PUBLIC, "sdk.demo_setup"),
    # The console (decision 0020): sign-in is public; every other page needs a session (CONSOLE).
    Route("GET", "/console/sign-in", console_session.sign_in_page, PUBLIC, "console.sign_in", media=HTML),
    Route("POST", "/console/sign-in", console_session.sign_in, PUBLIC, "console.sign_in", media=HTML),
    Route("GET", "/console/link", console_session.link, PUBLIC, "console.link", media=HTML),
    Route("POST", "/console/link", console_session.link, PUBLIC, "console.link", media=HTML),
    Route("GET", "/console/assets/{name}", console_assets.asset, PUBLIC, "console.asset", media="text/plain"),
    Route("POST", "/console/sign-out", console_session.sign_out, CONSOLE, "console.sign_out", media=HTML),
    Route("GET", "/console", console_settings.settings_page, CONSOLE, "console.settings", media=HTML),
    Route("POST", "/console/settings/test-message", console_settings.test_message, CONSOLE, "console.test_message",
          media=HTML),
    Route("POST", "/console/settings/in-app", console_settings.switch_in_app, CONSOLE, "console.in_app", media=HTML),
    Route("POST", "/console/settings/delivery", console_settings.update_delivery, CONSOLE, "console.delivery",
          media=HTML),
    Route("GET", "/console/compose", console_compose.compose_page, CONSOLE, "console.compose", media=HTML),
    Route("POST", "/console/compose", console_compose.compose_submit, CONSOLE, "console.compose", media=HTML),
    Route("POST", "/console/api/preview", console_compose.preview, CONSOLE, "console.api_preview"),
    Route("POST", "/console/api/audience", console_compose.audience, CONSOLE, "console.api_audience"),
    Route("GET", "/console/people", console_person.person_page, CONSOLE, "console.people", media=HTML),
    Route("GET", "/console/messages", console_messages.messages_page, CONSOLE, "console.messages", media=HTML),
    Route("GET", "/console/messages/{id}", console_messages.message_page, CONSOLE, "console.message", media=HTML),
    Route("POST", "/console/messages/{id}/recall", console_messages.recall_message, CONSOLE, "console.message_recall",
          media=HTML),
    Route("GET", "/console/broadcasts", console_broadcasts.broadcasts_page, CONSOLE, "console.broadcasts",
          media=HTML),
    Route("GET", "/console/broadcasts/{id}", console_broadcasts.broadcast_page, CONSOLE, "console.broadcast",
          media=HTML),
    Route("POST", "/console/broadcasts/{id}/recall", console_broadcasts.recall_broadcast, CONSOLE,
          "console.broadcast_recall", media=HTML),
    Route("POST", "/console/broadcasts/{id}/resend", console_broadcasts.resend_broadcast, CONSOLE,
          "console.broadcast_resend", media=HTML),
    Route("GET", "/console/campaigns", console_broadcasts.campaign_page, CONSOLE, "console.campaign", media=HTML),
    Route("GET", "/console/triggers", console_triggers.triggers_page, CONSOLE, "console.triggers", media=HTML),
    Route("POST", "/console/triggers", console_triggers.create_trigger, CONSOLE, "console.triggers", media=HTML),
    Route("POST", "/console/triggers/{id}/delete", console_triggers.delete_trigger, CONSOLE, "console.trigger_delete",
          media=HTML),
    Route("GET", "/console/api/setup", console_settings.setup_status, CONSOLE, "console.api_setup"),
    Route("GET", "/console/api/messages/{id}", console_settings.message_state, CONSOLE, "console.api_message"),
    # Operations.
    Route("GET", "/healthz", ops.healthz, PUBLIC, "ops.healthz"),
    Route("GET", "/readyz", ops.readyz, PUBLIC, "ops.readyz"),
    Route("GET", "/metrics", ops.metrics, PUBLIC, "ops.metrics", media="text/plain"),
    Route("GET", "/openapi.json", openapi.document, PUBLIC, "openapi"),
)

# What /openapi.json documents: everything but the console's pages, which are for browsers (0020).
API_ROUTES = tuple(route for route in ROUTES if not route.path.startswith("/console"))

# Public pages answer HEAD too (load balancers and uptime checks use it); the API refuses it (405).
_HEAD = {"home", "openapi", "sdk.script", "sdk.plugin", "sdk.demo", "ops.healthz", "ops.readyz", "ops.metrics"}


def add_routes(app: web.Application) -> None:
    """Register every route and record who may call it."""
    access: dict[web.AbstractRoute, Access] = {}
    resources: dict[str, web.Resource] = {}
    for method, path, handler, who, name, *_ in ROUTES:
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
    # The console's pages are for browsers, not API clients: they stay out of the API's document.
    app[OPENAPI] = openapi.encoded(API_ROUTES)
