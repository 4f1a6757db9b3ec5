"""What a result was measured on: the machine, the software versions, and the commit."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
from pathlib import Path
from typing import Any

import psutil

__all__ = ["git_commit", "machine_info"]


def git_commit(repo: Path) -> str:
    """The commit hash, with `-dirty` when tracked files differ from it; `unknown` outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def machine_info(postgres_version: str, nginx_version: str | None) -> dict[str, Any]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {
        "cores": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "postgresql": postgres_version,
        "nginx": nginx_version or "not installed",
        "open_files_limit": soft if soft == hard else f"{soft} (hard {hard})",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
