"""The filter compiler: what each filter compiles to, and a 422 `invalid_filter` naming every mistake.

Whether PostgreSQL agrees with these predicates is shown through broadcasts, in
tests/http/test_broadcasts.py.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from gateway.core.filters import CompiledFilter, compile_filter
from gateway.errors import Unprocessable


def compiled(node: Any) -> tuple[str, dict[str, Any]]:
    result = compile_filter(node)
    return result.path, result.vars


@pytest.mark.parametrize(
    ("node", "path", "variables"),
    [
        pytest.param({"attribute": "plan", "op": "eq", "value": "pro"},
                     'exists($."plan" ? (@ == $v0))', {"v0": "pro"}, id="eq"),
        pytest.param({"attribute": "plan", "op": "ne", "value": "pro"},
                     '!exists($."plan" ? (@ == $v0))', {"v0": "pro"}, id="ne-is-true-when-missing"),
        pytest.param({"attribute": "seats", "op": "lt", "value": 5}, 'exists($."seats" ? (@ < $v0))', {"v0": 5},
                     id="lt"),
        pytest.param({"attribute": "seats", "op": "lte", "value": 5.5}, 'exists($."seats" ? (@ <= $v0))',
                     {"v0": 5.5}, id="lte"),
        pytest.param({"attribute": "seats", "op": "gt", "value": -1}, 'exists($."seats" ? (@ > $v0))', {"v0": -1},
                     id="gt"),
        pytest.param({"attribute": "vip", "op": "gte", "value": True}, 'exists($."vip" ? (@ >= $v0))',
                     {"v0": True}, id="gte"),
        pytest.param({"attribute": "plan", "op": "in", "value": ["pro", "team", None]},
                     'exists($."plan" ? (@ == $v0 || @ == $v1 || @ == $v2))', {"v0": "pro", "v1": "team", "v2": None},
                     id="in"),
        pytest.param({"attribute": "plan", "op": "exists"}, 'exists($."plan")', {}, id="exists"),
        pytest.param({"attribute": "plan", "op": "exists", "value": "ignored"}, 'exists($."plan")', {},
                     id="exists-ignores-value"),
        pytest.param(
            {"and": [{"attribute": "a", "op": "exists"}, {"or": [{"attribute": "b", "op": "eq", "value": 1},
                                                                 {"not": {"attribute": "c", "op": "exists"}}]}]},
            '(exists($."a") && (exists($."b" ? (@ == $v0)) || !(exists($."c"))))', {"v0": 1}, id="nested",
        ),
    ],
)
def test_each_filter_compiles_to_a_predicate(node: Any, path: str, variables: dict[str, Any]) -> None:
    assert compiled(node) == (path, variables)
    assert compile_filter(node).as_json() == {"path": path, "vars": variables}


def test_values_travel_as_variables_never_in_the_path() -> None:
    hostile = '") || true || ("'
    path, variables = compiled({"attribute": "plan", "op": "eq", "value": hostile})
    assert hostile not in path
    assert variables == {"v0": hostile}


@pytest.mark.parametrize(
    ("attribute", "quoted"),
    [
        pytest.param('say "hi"', '$."say \\"hi\\""', id="quote"),
        pytest.param("back\\slash", '$."back\\\\slash"', id="backslash"),
        pytest.param('\\"', '$."\\\\\\""', id="backslash-then-quote"),
        pytest.param("$.x || true", '$."$.x || true"', id="jsonpath-syntax"),
    ],
)
def test_attribute_names_are_quoted(attribute: str, quoted: str) -> None:
    path, _ = compiled({"attribute": attribute, "op": "exists"})
    assert path == f"exists({quoted})"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        pytest.param("2026-01-01T00:00:00Z", 1_767_225_600.0, id="utc-z"),
        pytest.param("2026-01-01T01:00:00+01:00", 1_767_225_600.0, id="offset"),
        pytest.param("2026-01-01", 1_767_225_600.0, id="date-is-utc-midnight"),
        pytest.param("2026-01-01T00:00:00", 1_767_225_600.0, id="no-zone-is-utc"),
        pytest.param(1_767_225_600, 1_767_225_600, id="unix-seconds-as-is"),
    ],
)
def test_times_compare_as_unix_seconds(value: Any, seconds: float) -> None:
    _, variables = compiled({"attribute": "created_at", "op": "gte", "value": value})
    assert variables == {"v0": seconds}


def test_a_time_without_a_zone_is_utc_whatever_the_servers_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        _, variables = compiled({"attribute": "created_at", "op": "gte", "value": "2026-01-01T00:00:00"})
    finally:
        monkeypatch.undo()
        time.tzset()
    assert variables == {"v0": 1_767_225_600.0}


def test_an_iso_time_in_an_in_list_is_converted_too() -> None:
    _, variables = compiled({"attribute": "trial_ends_at", "op": "in", "value": ["2026-01-01T00:00:00Z", 0]})
    assert variables == {"v0": 1_767_225_600.0, "v1": 0}


def test_a_time_only_converts_for_attributes_named_at() -> None:
    _, variables = compiled({"attribute": "birthday", "op": "eq", "value": "2026-01-01"})
    assert variables == {"v0": "2026-01-01"}


@pytest.mark.parametrize(
    ("node", "where", "says"),
    [
        pytest.param("plan = pro", "$.filter", "a filter is a JSON object", id="string"),
        pytest.param(None, "$.filter", "a filter is a JSON object", id="null"),
        pytest.param([], "$.filter", "a filter is a JSON object", id="list"),
        pytest.param({}, "$.filter", "a condition needs `attribute`", id="empty"),
        pytest.param({"attribute": 5, "op": "exists"}, "$.filter", "a condition needs `attribute`",
                     id="attribute-number"),
        pytest.param({"attribute": "", "op": "exists"}, "$.filter", "1 to 64", id="attribute-empty"),
        pytest.param({"attribute": "a" * 65, "op": "exists"}, "$.filter", "1 to 64", id="attribute-65"),
        pytest.param({"attribute": "a"}, "$.filter.op", "`op` is one of", id="no-op"),
        pytest.param({"attribute": "a", "op": "like", "value": "x"}, "$.filter.op", "`op` is one of",
                     id="unknown-op"),
        pytest.param({"attribute": "a", "op": "EQ", "value": "x"}, "$.filter.op", "`op` is one of", id="op-case"),
        pytest.param({"attribute": "a", "op": ["eq"], "value": "x"}, "$.filter.op", "`op` is one of",
                     id="op-list"),
        pytest.param({"attribute": "a", "op": {"eq": 1}, "value": "x"}, "$.filter.op", "`op` is one of",
                     id="op-object"),
        pytest.param({"attribute": "a", "op": "eq"}, "$.filter", "needs a `value`", id="no-value"),
        pytest.param({"attribute": "a", "op": "eq", "value": [1]}, "$.filter.value", "string, number",
                     id="value-list"),
        pytest.param({"attribute": "a", "op": "eq", "value": {"$ne": 1}}, "$.filter.value", "string, number",
                     id="value-object"),
        pytest.param({"attribute": "a", "op": "in", "value": "x"}, "$.filter.value", "list of 1 to 1000",
                     id="in-string"),
        pytest.param({"attribute": "a", "op": "in", "value": []}, "$.filter.value", "list of 1 to 1000",
                     id="in-empty"),
        pytest.param({"attribute": "a", "op": "in", "value": list(range(1001))}, "$.filter.value",
                     "list of 1 to 1000", id="in-1001"),
        pytest.param({"attribute": "a", "op": "in", "value": [1, [2]]}, "$.filter.value", "string, number",
                     id="in-nested"),
        pytest.param({"attribute": "a", "op": "exists", "extra": 1}, "$.filter", "unknown filter fields ['extra']",
                     id="unknown-field"),
        pytest.param({"attribute": "created_at", "op": "gt", "value": "yesterday"}, "$.filter.value",
                     "`created_at` is a time", id="time-text"),
        pytest.param({"attribute": "created_at", "op": "gt", "value": "2026-13-01"}, "$.filter.value",
                     "`created_at` is a time", id="time-month-13"),
        pytest.param({"and": []}, "$.filter", "`and` takes a non-empty list", id="and-empty"),
        pytest.param({"or": {"attribute": "a", "op": "exists"}}, "$.filter", "`or` takes a non-empty list",
                     id="or-object"),
        pytest.param({"not": None}, "$.filter.not", "a filter is a JSON object", id="not-null"),
        pytest.param({"and": [{"attribute": "a", "op": "exists"}], "or": []}, "$.filter",
                     "a condition needs `attribute`", id="and-beside-or"),
        pytest.param({"or": [{"attribute": "a", "op": "exists"}, {"not": {"attribute": "b", "op": "nope"}}]},
                     "$.filter.or[1].not.op", "`op` is one of", id="deep-path"),
        pytest.param({"or": [{"attribute": "a", "op": "exists"}] * 100}, "$.filter.or[99]", "at most 100",
                     id="101-nodes"),
    ],
)
def test_a_bad_filter_names_the_mistake_and_where(node: Any, where: str, says: str) -> None:
    with pytest.raises(Unprocessable) as caught:
        compile_filter(node)
    assert caught.value.code == "invalid_filter"
    assert caught.value.status == 422
    assert says in caught.value.message, caught.value.message
    assert caught.value.message.endswith(f"at `{where}`"), caught.value.message


def test_100_nodes_are_allowed() -> None:
    result = compile_filter({"or": [{"attribute": "a", "op": "exists"}] * 99})
    assert isinstance(result, CompiledFilter)
    assert result.path.count("exists") == 99


def test_the_caller_names_the_root() -> None:
    with pytest.raises(Unprocessable, match=r"at `\$\.audience\.filter\.op`"):
        compile_filter({"attribute": "a", "op": "nope"}, "$.audience.filter")
