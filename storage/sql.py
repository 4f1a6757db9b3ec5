"""Parse `queries.sql` once at import into a read-only name→statement mapping.

The file is the contract between Python and SQL: each statement sits under a `-- name --`
header, and the Python function that runs it has the same name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources
from types import MappingProxyType

__all__ = ["parse_queries", "queries"]

_HEADER = re.compile(r"^-- ([a-z][a-z0-9_]*) --$", re.MULTILINE)


def parse_queries(text: str) -> Mapping[str, str]:
    """Split a queries file into statements; a repeated name is an error, not a silent override."""
    parts = _HEADER.split(text)
    statements: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in statements:
            raise ValueError(f"queries.sql: statement {name!r} is defined twice")
        lines = [line for line in body.strip().splitlines() if not line.startswith("--")]
        statement = "\n".join(lines).strip()
        if not statement:
            raise ValueError(f"queries.sql: statement {name!r} is empty")
        statements[name] = statement
    return MappingProxyType(statements)


queries: Mapping[str, str] = parse_queries(
    resources.files(__package__).joinpath("queries.sql").read_text(encoding="utf-8")
)
