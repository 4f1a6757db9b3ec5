"""A workspace's credentials as the CLI shows them: once, on creation (the API key is not stored in clear)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from storage import WorkspaceCredentials

__all__ = ["credentials_dict", "print_credentials", "print_rotation", "save_credentials"]


def credentials_dict(credentials: WorkspaceCredentials) -> dict[str, Any]:
    workspace = credentials.workspace
    return {
        "name": workspace.name,
        "site_id": workspace.site_id,
        "api_key": credentials.api_key,
        "identity_secret": workspace.identity_secret,
    }


def print_credentials(credentials: WorkspaceCredentials, *, as_json: bool) -> None:
    values = credentials_dict(credentials)
    if as_json:
        print(json.dumps(values))
        return
    print(f"workspace {values['name']!r} created")
    print(f"  site id:         {values['site_id']}")
    print(f"  API key:         {values['api_key']}   (shown once: store it now)")
    print(f"  identity secret: {values['identity_secret']}")
    print(f"  identity proof:  {credentials.workspace.identity_mode}")


def print_rotation(values: dict[str, Any], *, as_json: bool) -> None:
    """A rotated API key or identity secret, shown once, and when the old ones stop working."""
    if as_json:
        print(json.dumps(values))
        return
    if "api_key" in values:
        print(f"new API key for {values['name']!r}: {values['api_key']}   (shown once: store it now)")
    else:
        print(f"new identity secret for {values['name']!r} (kid {values['kid']}): {values['identity_secret']}")
    ends = values["old_expire_at"]
    print("  old ones stop working at: " + (", ".join(sorted(set(ends))) if ends else "(none left)"))


def save_credentials(credentials: WorkspaceCredentials, path: Path) -> None:
    """Write the credentials where only their owner can read them (mode 0600 from the start)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump(credentials_dict(credentials), file, indent=2)
