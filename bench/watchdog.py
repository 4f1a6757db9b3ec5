"""A guard that stops the run's embedded PostgreSQL if the bench dies without cleaning up.

The bench stops its servers in `finally` blocks, and its other servers run under `timeout`; the
embedded PostgreSQL is a daemon, so this small process watches the bench's pid and stops the
server when the bench is gone (or after `--max-seconds`), then exits. Started and ended by
`bench.cli`; run by hand only to test it.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from pathlib import Path

import storage

__all__ = ["main"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.watchdog")
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True, help="the EmbeddedPostgres data folder")
    parser.add_argument("--max-seconds", type=float, required=True)
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.max_seconds
    while _alive(args.parent) and time.monotonic() < deadline:
        time.sleep(1.0)
    server = storage.EmbeddedPostgres(args.data_dir)
    if server.is_running():
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
