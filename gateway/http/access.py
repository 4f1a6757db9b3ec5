"""Who may call a route: declared per route in routes.py, never inferred from a route's name."""

from __future__ import annotations

from enum import Enum

__all__ = ["Access"]


class Access(Enum):
    DEVICE = "device"  # public, CORS-open to any origin; the body names a site and a person
    SERVER = "server"  # a workspace's API key; refused to browsers on other origins
    PUBLIC = "public"  # no credentials: the SDK script, the demo page, health and metrics
    CONSOLE = "console"  # a console session cookie; every unsafe method also needs the session's CSRF token
