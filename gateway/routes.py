"""The route table. Names say who may call: `device.*` is public, `server.*` needs an API key."""

from __future__ import annotations

from aiohttp import web

from . import broadcast_api, device_api, ops, sdk, server_api

__all__ = ["add_routes"]


def add_routes(app: web.Application) -> None:
    router = app.router
    # Device API (CORS-open; OPTIONS answers preflights in the CORS middleware).
    for path, handler, name in (
        ("/v1/poll", device_api.poll, "device.poll"),
        ("/v1/events", device_api.events, "device.events"),
        ("/v1/identify", device_api.identify, "device.identify"),
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
    router.add_get("/v1/broadcasts/{id}", broadcast_api.get_broadcast, name="server.broadcast", allow_head=False)
    router.add_put("/v1/people/{id}", server_api.identify, name="server.identify")
    router.add_get(
        "/v1/people/{id}/messages", server_api.list_person_messages, name="server.person_messages",
        allow_head=False,
    )
    workspace = router.add_resource("/v1/workspace", name="server.workspace")
    workspace.add_route("GET", server_api.get_workspace)
    workspace.add_route("PATCH", server_api.patch_workspace)

    # The web SDK and the demo page.
    router.add_get(sdk.SDK_PATH, sdk.script, name="sdk.script")
    router.add_get("/demo", sdk.demo, name="sdk.demo")

    # Operations.
    router.add_get("/healthz", ops.healthz, name="ops.healthz")
    router.add_get("/readyz", ops.readyz, name="ops.readyz")
    router.add_get("/metrics", ops.metrics, name="ops.metrics")
