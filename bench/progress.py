"""Progress lines on stderr while the bench runs, stamped with seconds since the start."""

from __future__ import annotations

import sys
import time

__all__ = ["say"]

_STARTED = time.monotonic()


def say(scope: str, text: str) -> None:
    """One line `[  12.3s] s3: parked 25,000/50,000`, flushed so a tee or a CI log shows it live."""
    print(f"[{time.monotonic() - _STARTED:7.1f}s] {scope}: {text}", file=sys.stderr, flush=True)
