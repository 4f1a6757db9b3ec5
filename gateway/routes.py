"""The route table. Names say who may call: `device.*` is public, `server.*` needs an API key."""

from __future__ import annotations

from aiohttp import web

from . import broadcast_api, device_api, ops, sdk, server_api, setup_api, template_api, trigger_api

__all__ = ["add_routes"]


def add_routes(app: web.Application) -> None:
    router = app.router
    # Device API (CORS-open; OPTIONS answers preflights in the CORS middleware).
    for path, handler, name in (
        ("/v1/poll", device_api.poll, "device.poll"),
        ("/v1/events", device_api.events, "device.events"),
        ("/v1/identify", device_api.identify, "device.identify"),
        ("/v1/track", trigger_api.track, "device.track"),
    ):
        resource = router.add_resource(path, name=name)
        resource.add_route("POST", handler)
        resource.add_route("OPTIONS", handler)

    # Server API.
    router.add_post("/v1/messages", server_api.send_message, name="server.send_message")
    message = router.add_resource("/v1/messages/{id}", name="server.message")
    message.add_route("GET", server_api.get_message)
    message.add_route("DELETE", server_api.recall_message)
    router.add_post("/v1/broadcasts", broadcast_api.send_broadcast, name="server.send_broadcast")
    broadcast = router.add_resource("/v1/broadcasts/{id}", name="server.broadcast")
    broadcast.add_route("GET", broadcast_api.get_broadcast)
    broadcast.add_route("DELETE", broadcast_api.recall_broadcast)
    router.add_post("/v1/broadcasts/{id}/resend", broadcast_api.resend_broadcast, name="server.resend_broadcast")
    router.add_put("/v1/people/{id}", server_api.identify, name="server.identify")
    router.add_get(
        "/v1/people/{id}/messages", server_api.list_person_messages, name="server.person_messages",
        allow_head=False,
    )
    router.add_post("/v1/people/{id}/events", trigger_api.record_person_event, name="server.person_events")
    triggers = router.add_resource("/v1/triggers", name="server.triggers")
    triggers.add_route("GET", trigger_api.list_triggers)
    triggers.add_route("POST", trigger_api.create_trigger)
    router.add_delete("/v1/triggers/{id}", trigger_api.disable_trigger, name="server.trigger")
    workspace = router.add_resource("/v1/workspace", name="server.workspace")
    workspace.add_route("GET", server_api.get_workspace)
    workspace.add_route("PATCH", server_api.patch_workspace)
    templates = router.add_resource("/v1/templates", name="server.templates")
    templates.add_route("GET", template_api.list_templates)
    templates.add_route("POST", template_api.create_template)
    router.add_get("/v1/templates/{id}", template_api.get_template, name="server.template", allow_head=False)
    router.add_post("/v1/test-message", setup_api.test_message, name="server.test_message")
    router.add_get("/v1/workspace/setup", setup_api.workspace_setup, name="server.workspace_setup", allow_head=False)

    # The web SDK and the demo page.
    router.add_get(sdk.SDK_PATH, sdk.script, name="sdk.script")
    router.add_get("/demo", sdk.demo, name="sdk.demo")
    router.add_get("/demo/setup", sdk.demo_setup, name="sdk.demo_setup", allow_head=False)

    # Operations.
    router.add_get("/healthz", ops.healthz, name="ops.healthz")
    router.add_get("/readyz", ops.readyz, name="ops.readyz")
    router.add_get("/metrics", ops.metrics, name="ops.metrics")
