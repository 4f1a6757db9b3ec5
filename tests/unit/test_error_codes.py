"""Every error code the app can answer with is a named constant, and docs/api.md lists each one."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.errors import ErrorCode, EventRejection

ROOT = Path(__file__).resolve().parents[2]
API_DOC = (ROOT / "docs" / "api.md").read_text()


def _documented_codes() -> set[str]:
    return set(re.findall(r"^\| (?:\d{3}|4xx) \| `([a-z_]+)` \|", API_DOC, flags=re.MULTILINE))


def test_docs_list_every_error_code_and_no_other() -> None:
    assert _documented_codes() == {code.value for code in ErrorCode}


def test_docs_name_every_event_rejection() -> None:
    for code in EventRejection:
        assert f"`{code.value}`" in API_DOC


def test_codes_are_stable_snake_case() -> None:
    for code in [*ErrorCode, *EventRejection]:
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", code.value), code


def test_no_code_is_written_as_a_loose_string() -> None:
    """`code="..."` in the gateway would bypass the enum (and the docs table)."""
    loose = []
    for path in (ROOT / "gateway").rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"""code\s*=\s*f?["']""", line):
                loose.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not loose, "\n".join(loose)
