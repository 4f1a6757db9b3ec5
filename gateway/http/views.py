"""Views: results of the core as the API shows them, and JSON responses (orjson bytes, UTC times ending in Z)."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from storage import Broadcast, DeliveredMessage, Event, Message, Person, Template, Trigger, Workspace, WorkspaceSetup

from ..core.identity import identity_warning
from ..core.ratelimits import WORKSPACE_LIMITS, Limits
from ..core.workspaces import WorkspaceCredentialsStatus

__all__ = [
    "broadcast_view",
    "credentials_view",
    "device_message",
    "error_body",
    "json_response",
    "person_view",
    "server_message",
    "setup_view",
    "template_view",
    "trigger_view",
    "workspace_view",
]

_BROADCAST_STATES = ("queued", "offered", "shown", "dismissed", "expired", "recalled")

_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def json_response(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(data, option=_OPTIONS), status=status, headers=headers, content_type="application/json"
    )


def device_message(message: DeliveredMessage) -> dict[str, Any]:
    """A message as a device sees it (the contract's Message)."""
    return {
        "id": str(message.id),
        "content": message.content,
        "properties": message.properties,
        "priority": message.priority,
        "persistent": message.persistent,
        "expires_at": message.expires_at,
        "campaign": message.campaign,
    }


def server_message(message: Message, events: list[Event] | None = None) -> dict[str, Any]:
    """A message as the server API sees it: its lifecycle state and, when read alone, its events."""
    view: dict[str, Any] = {
        "id": str(message.id),
        "to": {"id": message.external_id, "email": message.email},
        "state": message.state,
        "content": message.content,
        "properties": message.properties,
        "priority": message.priority,
        "persistent": message.persistent,
        "campaign": message.campaign,
        "created_at": message.created_at,
        "expires_at": message.expires_at,
        "device_id": message.device_id,
        "lease_expires_at": message.lease_expires_at,
        "shown_at": message.shown_at,
    }
    if events is not None:
        view["events"] = [
            {"type": e.type, "at": e.at, "device_id": e.device_id, "action": e.action} for e in events
        ]
    return view


def person_view(person: Person) -> dict[str, Any]:
    return {"id": person.external_id, "email": person.email, "attributes": person.attributes,
            "device_attributes": person.device_attributes}


def workspace_view(workspace: Workspace, limits: Limits) -> dict[str, Any]:
    """The settings; `rate_limits` are the ones in force for it (null: not limited)."""
    return {
        "name": workspace.name,
        "site_id": workspace.site_id,
        "in_app_enabled": workspace.in_app_enabled,
        "identity_mode": workspace.identity_mode,
        "intervals": {
            "active_s": workspace.active_s,
            "inactive_s": workspace.inactive_s,
            "low_s": workspace.low_s,
            "recent_days": workspace.recent_days,
        },
        "lease_s": workspace.lease_s,
        "rate_limits": {
            name: limit.as_json() if (limit := getattr(limits, name)) is not None else None
            for name in WORKSPACE_LIMITS
        },
        "retention_days": workspace.retention_days,
        "device_attributes": list(workspace.device_attributes),
        "identity_hash_allowed": workspace.identity_hash_allowed,
        "max_token_lifetime_s": workspace.max_token_lifetime_s,
    }


def credentials_view(status: WorkspaceCredentialsStatus) -> dict[str, Any]:
    """What a workspace accepts, by id and kid with their ends: never a stored secret."""
    return {
        "api_keys": [{"id": k.id, "created_at": k.created_at, "expires_at": k.expires_at} for k in status.api_keys],
        "identity_secrets": [
            {"kid": s.kid, "created_at": s.created_at, "expires_at": s.expires_at} for s in status.identity_secrets
        ],
    }


def broadcast_view(broadcast: Broadcast) -> dict[str, Any]:
    return {
        "id": str(broadcast.id),
        "status": broadcast.status,
        "audience": broadcast.audience,
        "campaign": broadcast.campaign,
        "created_at": broadcast.created_at,
        "sends": broadcast.sends,
        "last_sent_at": broadcast.last_sent_at,
        "recalled_at": broadcast.recalled_at,
        "queued": broadcast.queued,
        "total": broadcast.total,
        "counts": broadcast.counts,
        # The states alone (without `action`) add up to `total`.
        "states": {state: broadcast.counts[state] for state in _BROADCAST_STATES},
    }


def template_view(template: Template) -> dict[str, Any]:
    return {
        "id": str(template.id),
        "name": template.name,
        "content": template.content,
        "properties": template.properties,
        "created_at": template.created_at,
    }


def trigger_view(trigger: Trigger) -> dict[str, Any]:
    return {
        "id": str(trigger.id),
        "event": trigger.event,
        "filter": trigger.filter["source"] if trigger.filter else None,
        "message": trigger.message,
        "reentry": trigger.reentry,
        "enabled": trigger.enabled,
        "created_at": trigger.created_at,
    }


def setup_view(setup: WorkspaceSetup, identity_mode: str) -> dict[str, Any]:
    """The setup status, with what the identity mode lets anyone do when it is below `required`."""
    if setup.first_shown_at is None:
        view: dict[str, Any] = {"status": "required"}
    else:
        view = {"status": "complete", "first_shown_at": setup.first_shown_at, "platform": setup.platform}
    view["identity_mode"] = identity_mode
    warning = identity_warning(identity_mode)
    if warning is not None:
        view["identity_warning"] = warning
    return view


def error_body(code: str, message: str) -> dict[str, Any]:
    """The contract's error shape."""
    return {"error": {"code": code, "message": message}}
