"""The SQL file: the parser, the file's own conventions, and that code and file name the same statements."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from storage.sql import parse_queries, queries

STORAGE = Path(__file__).resolve().parents[2] / "storage"
QUERIES_FILE = STORAGE / "queries.sql"
TABLES = ("workspaces", "api_keys", "people", "messages", "events", "broadcasts", "schema_migrations")

# queries["name"] or queries['name'], with any spacing.
_USE = re.compile(r"""\bqueries\[\s*(["'])([a-z][a-z0-9_]*)\1\s*\]""")
_ANY_USE = re.compile(r"\bqueries\[")
_HEADER_LINE = re.compile(r"^-- ([a-z][a-z0-9_]*) --$", re.MULTILINE)


def _used_names() -> dict[str, list[str]]:
    """Every statement name the storage code looks up, with the files that use it."""
    used: dict[str, list[str]] = {}
    for path in sorted(STORAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        literal = [m.group(2) for m in _USE.finditer(text)]
        # A computed key (queries[name]) would hide a statement from this test: refuse it.
        assert len(literal) == len(_ANY_USE.findall(text)), f"{path.name} looks a statement up by a computed key"
        for name in literal:
            used.setdefault(name, []).append(path.name)
    return used


# --- The parser ---------------------------------------------------------------------------------


def test_parses_headers_into_statements() -> None:
    parsed = parse_queries(
        "-- File preamble, not a statement.\n"
        "\n"
        "-- get_thing --\n"
        "-- A thing by id. $1 id\n"
        "SELECT id, name\n"
        "FROM things\n"
        "WHERE id = $1;\n"
        "\n"
        "-- delete_thing --\n"
        "-- Delete a thing. $1 id\n"
        "DELETE FROM things WHERE id = $1;\n"
    )
    assert dict(parsed) == {
        "get_thing": "SELECT id, name\nFROM things\nWHERE id = $1;",
        "delete_thing": "DELETE FROM things WHERE id = $1;",
    }


def test_comment_lines_inside_a_statement_are_dropped() -> None:
    parsed = parse_queries("-- q --\n-- what it does\nSELECT 1\n-- an aside\nFROM x;\n")
    assert parsed["q"] == "SELECT 1\nFROM x;"


def test_only_exact_header_lines_start_a_statement() -> None:
    parsed = parse_queries(
        "-- q --\n-- what\nSELECT 1 -- q2 --\n-- Not_A_Header --\n --  q3 --\n-- q4 -- trailing\n;\n"
    )
    assert list(parsed) == ["q"]


def test_the_mapping_is_read_only() -> None:
    parsed = parse_queries("-- q --\n-- what\nSELECT 1;\n")
    with pytest.raises(TypeError):
        parsed["q"] = "DROP TABLE messages;"  # type: ignore[index]
    with pytest.raises(TypeError):
        queries["claim_messages"] = "SELECT 1;"  # type: ignore[index]


def test_a_duplicate_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="'q' is defined twice"):
        parse_queries("-- q --\n-- one\nSELECT 1;\n\n-- q --\n-- two\nSELECT 2;\n")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("-- q --\n", id="nothing"),
        pytest.param("-- q --\n-- only a description\n\n", id="only-comments"),
        pytest.param("-- q --\n   \n\t\n-- r --\n-- what\nSELECT 1;\n", id="blank-then-next-header"),
    ],
)
def test_an_empty_statement_is_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="'q' is empty"):
        parse_queries(text)


def test_no_headers_means_no_statements() -> None:
    assert dict(parse_queries("-- just a comment\n")) == {}


# --- The shipped file ---------------------------------------------------------------------------


def test_the_loaded_mapping_is_the_file() -> None:
    assert dict(queries) == dict(parse_queries(QUERIES_FILE.read_text(encoding="utf-8")))
    assert len(queries) > 0


def test_every_statement_is_described() -> None:
    """A header is followed by one `--` line saying what the statement does and what $1…$n are."""
    lines = QUERIES_FILE.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if _HEADER_LINE.match(line):
            description = lines[i + 1]
            assert description.startswith("-- ") and len(description) > 10, line
            statement = queries[line[3:-3]]
            numbers = {int(n) for n in re.findall(r"\$(\d+)", statement)}
            for n in numbers:
                assert f"${n}" in description, f"{line}: ${n} is not described"
            assert numbers == set(range(1, len(numbers) + 1)), f"{line}: parameters skip a number"


def test_names_are_verb_object_snake_case() -> None:
    for name in queries:
        assert re.fullmatch(r"[a-z]+(_[a-z0-9]+)+", name), name


def test_no_select_star_from_a_table() -> None:
    """A cached statement reading `*` breaks when a migration changes the table's columns."""
    for name, statement in queries.items():
        for table in TABLES:
            assert not re.search(rf"select\s+\*\s+from\s+{table}\b", statement, re.IGNORECASE), name
        assert not re.search(r"\b[a-z]\.\*", statement), name


def test_values_are_parameters_not_formatting() -> None:
    """Statement text is constant: no Python format fields or %-placeholders."""
    for name, statement in queries.items():
        assert not re.search(r"\{[a-z_]+\}|%s|%\(", statement), name


# --- Code and file agree ------------------------------------------------------------------------


def test_every_statement_the_code_uses_exists() -> None:
    missing = {name: files for name, files in _used_names().items() if name not in queries}
    assert missing == {}


def test_every_statement_in_the_file_is_used() -> None:
    unused = sorted(set(queries) - set(_used_names()))
    assert unused == []


def test_the_gateway_holds_no_sql() -> None:
    """The gateway never looks statements up; it calls storage functions."""
    for path in sorted((STORAGE.parent / "gateway").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert not _ANY_USE.search(text), path
        assert "storage.sql" not in text and "from storage import sql" not in text, path
