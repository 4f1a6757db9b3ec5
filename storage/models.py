"""The frozen records storage functions return; callers never see an `asyncpg.Record`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "ApiKeyInfo",
    "Claim",
    "DeliveredMessage",
    "Event",
    "Idempotency",
    "IdentitySecret",
    "Message",
    "NewMessage",
    "Person",
    "Workspace",
    "WorkspaceCredentials",
]


@dataclass(frozen=True, slots=True)
class IdentitySecret:
    """A secret that signs user tokens, named by `kid`; accepted until `expires_at` (None: no end)."""

    kid: str
    secret: str
    created_at: datetime
    expires_at: datetime | None

    def active(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > now


@dataclass(frozen=True, slots=True)
class Workspace:
    """A tenant and its settings; durations are whole seconds.

    `identity_secret` is the newest secret (the static `user_hash` uses it); `identity_secrets`
    holds every secret not yet pruned, newest first, rotated-out ones with their `expires_at`.
    """

    id: int
    name: str
    site_id: str
    identity_secret: str
    identity_mode: str
    in_app_enabled: bool
    active_s: int
    inactive_s: int
    low_s: int
    recent_days: int
    lease_s: int
    # The workspace's own rate limits by name (gateway/core/ratelimits.py reads them); empty: the server's.
    rate_limits: dict[str, Any] = field(default_factory=dict, hash=False)
    # Days a final message and its events are kept before the retention sweep deletes them.
    retention_days: int = 30
    # Attribute names devices may write for filters and templates to read (decision 0012).
    device_attributes: tuple[str, ...] = ()
    identity_hash_allowed: bool = True
    max_token_lifetime_s: int = 86400
    identity_secrets: tuple[IdentitySecret, ...] = ()


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """An API key as the workspace lists it: never the key, which is stored only hashed."""

    id: int
    created_at: datetime
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class WorkspaceCredentials:
    """What `workspace create` prints once: the API key is never stored in clear."""

    workspace: Workspace
    api_key: str


@dataclass(frozen=True, slots=True)
class Person:
    """A person: `attributes` are the backend's, `device_attributes` what devices wrote.

    `readable_attributes`, where a statement computed it, is what filters and templates read: the
    backend's, over the device's the workspace lists (decision 0012); None: the backend's alone.
    """

    id: int
    external_id: str | None
    email: str | None
    attributes: dict[str, Any]
    device_attributes: dict[str, Any] = field(default_factory=dict)
    readable_attributes: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """A message as the server API sees it, with its lifecycle state."""

    id: uuid.UUID
    external_id: str | None
    email: str | None
    state: str
    content: dict[str, Any]
    properties: dict[str, Any]
    priority: int
    persistent: bool
    campaign: str | None
    created_at: datetime
    expires_at: datetime
    device_id: str | None
    lease_expires_at: datetime | None
    shown_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to queue: what a single send, a broadcast and a trigger have in common.

    `content` is None only while a send names a stored template (`template_id`) instead; with no
    `expires_at`, the message expires `ttl_s` after it is queued.
    """

    content: dict[str, Any] | None
    properties: dict[str, Any] = field(default_factory=dict)
    priority: int = 0
    persistent: bool = False
    campaign: str | None = None
    expires_at: datetime | None = None
    ttl_s: int = 30 * 86400
    template_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class Idempotency:
    """A caller's `Idempotency-Key` and a digest of the request it protects."""

    key: str
    digest: bytes


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    at: datetime
    device_id: str | None
    action: str | None


@dataclass(frozen=True, slots=True)
class DeliveredMessage:
    """A message a poll hands to a device; `offered` is false for a persistent one already shown.

    `lease_expires_at` is when an offer's lease ends on the database clock (None once shown).
    """

    id: uuid.UUID
    content: dict[str, Any]
    properties: dict[str, Any]
    priority: int
    persistent: bool
    expires_at: datetime
    campaign: str | None
    offered: bool
    lease_expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Claim:
    """What one poll's statement returns: the device's messages and the facts its tier needs."""

    now: datetime
    person_id: int | None
    last_message_at: datetime | None
    messages: tuple[DeliveredMessage, ...]
    # As of the claim's snapshot: any queued/offered message for any device, or a persistent
    # one on display. Neither means that nothing can become deliverable without a NOTIFY.
    pending: bool = False
    showing: bool = False
    # A visit broadcast this person may still enter: time alone can make one due, with no NOTIFY.
    visiting: bool = False
    # As of the claim's snapshot: a queued/offered message apart from those this claim hands the
    # device (claimed or held), or one a concurrent claim had locked (decision 0045).
    pending_elsewhere: bool = False
