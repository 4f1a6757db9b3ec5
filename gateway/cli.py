"""The `mailslot` command: serve, reload, migrate, workspace create, console-link.

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

import storage

from .config import SETTINGS, Config, ConfigError, load_config
from .credentials import print_credentials

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
    _add_settings(migrate, _DATABASE_SETTINGS)

    workspace = commands.add_parser("workspace", help="manage workspaces")
    workspace_commands = workspace.add_subparsers(dest="workspace_command", required=True, metavar="COMMAND")
    create = workspace_commands.add_parser("create", help="create a workspace; prints its site id, API key "
                                           "and identity secret (the key is shown only once)")
    create.add_argument("name", help="the workspace's name")
    create.add_argument("--json", action="store_true", help="print one JSON object")
    _add_settings(create, _DATABASE_SETTINGS)

    link = commands.add_parser("console-link", help="print a one-time link that signs in to the console "
                               "(valid 15 minutes)")
    link.add_argument("--workspace", default="demo", help="the workspace's name (default: demo)")
    _add_settings(link, _DATABASE_SETTINGS | {"host", "port"})
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides = {s.name: getattr(args, s.name, None) for s in SETTINGS}
    try:
        config = load_config(overrides={k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        print(f"mailslot: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
    with storage.migrated_database(config.database_url, config.data_dir) as database:
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
        credentials = asyncio.run(_create_workspace(database.url, args.name))
        print_credentials(credentials, as_json=args.json)
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


async def _create_workspace(url: str, name: str) -> storage.WorkspaceCredentials:
    pool = await storage.create_pool(url, min_size=1, max_size=2)
    try:
        return await storage.create_workspace(pool, name)
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
