"""The `mailslot` command: serve, reload, migrate, workspace create / rotate-key / rotate-secret, console-link.

argparse (the standard library) rather than click: each flag mirrors a `MAILSLOT_*` variable
that `gateway.config` alone reads, so the CLI only passes explicit flags on as overrides.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

import storage

from .config import SETTINGS, Config, ConfigError, load_config
from .credentials import print_credentials, print_rotation
from .logs import configure_logging

__all__ = ["main"]

log = logging.getLogger("mailslot")

_SERVE_SETTINGS = {s.name for s in SETTINGS}
_DATABASE_SETTINGS = {"database_url", "data_dir", "log_level"}
# Where `serve` writes its supervisor's pid, under the data folder (gateway.serve.PID_FILE).
_PID_FILE = "mailslot.pid"


def _add_settings(parser: argparse.ArgumentParser, names: set[str]) -> None:
    for setting in SETTINGS:
        if setting.name in names:
            parser.add_argument(
                setting.flag, dest=setting.name, type=setting.parse, default=None,
                help=f"{setting.help} (env {setting.env})",
            )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailslot", description="Self-hosted in-app messaging gateway.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="apply migrations and serve HTTP",
                                description="Apply migrations and serve HTTP. With no database URL, "
                                "an embedded PostgreSQL runs under the data folder.")
    _add_settings(serve, _SERVE_SETTINGS)

    reload = commands.add_parser("reload", help="restart the running server's workers; no connection is dropped",
                                 description="Send SIGHUP to the `mailslot serve` running on this data folder: it "
                                 "starts new workers on the same port, then drains the old ones.")
    _add_settings(reload, {"data_dir"})

    migrate = commands.add_parser("migrate", help="apply the database migrations that are missing")
    migrate.add_argument("--after-deploy", action="store_true",
                         help="also apply the files that remove what the previous release needs; run it once "
                         "every gateway runs this release (docs/operations.md, Migrations)")
    _add_settings(migrate, _DATABASE_SETTINGS)

    workspace = commands.add_parser("workspace", help="manage workspaces")
    workspace_commands = workspace.add_subparsers(dest="workspace_command", required=True, metavar="COMMAND")
    create = workspace_commands.add_parser("create", help="create a workspace; prints its site id, API key "
                                           "and identity secret (the key is shown only once)")
    create.add_argument("name", help="the workspace's name")
    create.add_argument("--json", action="store_true", help="print one JSON object")
    create.add_argument("--identity-mode", choices=storage.IDENTITY_MODES, default="required",
                        help="identity proof devices must show (default required; `off` lets anyone who knows "
                        "a person's id poll as them and take their messages: for demos and load tests only)")
    _add_settings(create, _DATABASE_SETTINGS)
    for command, what in (("rotate-key", "API key"), ("rotate-secret", "identity secret")):
        rotate = workspace_commands.add_parser(
            command, help=f"add a new {what} (printed once); the old ones keep working for --grace-s seconds",
        )
        rotate.add_argument("name", help="the workspace's name (the oldest workspace of that name)")
        rotate.add_argument("--grace-s", type=_grace_s, required=True, metavar="N",
                            help=f"seconds the old {what}s keep working: 0 (at once) to {_MAX_GRACE_S}")
        rotate.add_argument("--json", action="store_true", help="print one JSON object")
        _add_settings(rotate, _DATABASE_SETTINGS)

    link = commands.add_parser("console-link", help="print a one-time link that signs in to the console "
                               "(valid 15 minutes)")
    link.add_argument("--workspace", default="demo", help="the workspace's name (default: demo)")
    _add_settings(link, _DATABASE_SETTINGS | {"host", "port"})
    return parser


_MAX_GRACE_S = 30 * 86400


def _grace_s(value: str) -> int:
    try:
        seconds = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of seconds: {value!r}") from None
    if not 0 <= seconds <= _MAX_GRACE_S:
        raise argparse.ArgumentTypeError(f"must be 0 to {_MAX_GRACE_S}, not {seconds}")
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides = {s.name: getattr(args, s.name, None) for s in SETTINGS}
    try:
        config = load_config(overrides={k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        print(f"mailslot: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.log_level, "%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return _run(args, config)
    except storage.StorageError as exc:
        print(f"mailslot: {exc}; check MAILSLOT_DATABASE_URL", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, config: Config) -> int:
    if args.command == "serve":
        from .serve import serve  # imports aiohttp and uvloop: only for the command that needs them

        return serve(config)
    if args.command == "reload":
        return _reload(config)
    after_deploy = args.command == "migrate" and args.after_deploy
    with storage.migrated_database(config.database_url, config.data_dir, after_deploy=after_deploy) as database:
        if args.command == "migrate":
            applied = database.applied
            print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
            return 0
        if args.command == "console-link":
            url = asyncio.run(console_link(database.url, args.workspace, config))
            if url is None:
                print(f"mailslot: no workspace named {args.workspace!r}; "
                      "create one with `mailslot workspace create NAME`", file=sys.stderr)
                return 1
            print(url)
            return 0
        if args.workspace_command == "create":
            credentials = asyncio.run(_create_workspace(database.url, args.name, args.identity_mode))
            print_credentials(credentials, as_json=args.json)
            return 0
        rotated = asyncio.run(_rotate(database.url, args.name, args.workspace_command, args.grace_s))
    if rotated is None:
        print(f"mailslot: no workspace named {args.name!r}", file=sys.stderr)
        return 1
    print_rotation(rotated, as_json=args.json)
    return 0


async def console_link(url: str, name: str, config: Config) -> str | None:
    """A one-time console sign-in link for the workspace `name` (None: no such workspace)."""
    from .core.console import create_link

    pool = await storage.create_pool(url, min_size=1, max_size=2)
    try:
        workspace = await storage.get_workspace_by_name(pool, name)
        if workspace is None:
            return None
        token = await create_link(pool, workspace.id)
    finally:
        await pool.close()
    host = config.host if config.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
    return f"http://{host}:{config.port}/console/link#{token}"


async def _create_workspace(url: str, name: str, identity_mode: str) -> storage.WorkspaceCredentials:
    pool = await storage.create_pool(url, min_size=1, max_size=2)
    try:
        return await storage.create_workspace(pool, name, identity_mode=identity_mode)
    finally:
        await pool.close()


async def _rotate(url: str, name: str, command: str, grace_s: int) -> dict[str, Any] | None:
    """The new credential and until when the old ones work; None when no workspace has this name.

    The statement notifies every gateway process, which drops its cached copy of the workspace.
    """
    pool = await storage.create_pool(url, min_size=1, max_size=2)
    try:
        workspace = await storage.get_workspace_by_name(pool, name)
        if workspace is None:
            return None
        if command == "rotate-key":
            api_key, key = await storage.rotate_api_key(pool, workspace.id, grace_s)
            keys = await storage.list_api_keys(pool, workspace.id)
            return {"name": name, "api_key": api_key, "id": key.id,
                    "old_expire_at": [k.expires_at.isoformat() for k in keys if k.expires_at is not None]}
        rotated = await storage.rotate_identity_secret(pool, workspace.id, grace_s)
        newest = rotated.identity_secrets[0]
        return {"name": name, "kid": newest.kid, "identity_secret": newest.secret,
                "old_expire_at": [s.expires_at.isoformat() for s in rotated.identity_secrets[1:]
                                  if s.expires_at is not None]}
    finally:
        await pool.close()


def _reload(config: Config) -> int:
    """Signal the supervisor named in the data folder's pid file, if it is a running `mailslot serve`."""
    path = config.data_dir / _PID_FILE
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        print(f"mailslot: no running server found ({path} is missing or unreadable); "
              "is `mailslot serve` running with this data folder (MAILSLOT_DATA_DIR / --data-dir)?", file=sys.stderr)
        return 1
    if not _is_mailslot_serve(pid):
        print(f"mailslot: process {pid} from {path} is not a running `mailslot serve`", file=sys.stderr)
        return 1
    os.kill(pid, signal.SIGHUP)
    print(f"reload requested from the server with pid {pid}")
    return 0


def _is_mailslot_serve(pid: int) -> bool:
    """Guards against a stale pid file whose number now belongs to another process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            words = cmdline.read().split(b"\0")
    except OSError:
        return True  # no /proc: trust the pid file
    return b"serve" in words and any(b"mailslot" in word or b"gateway" in word for word in words)
