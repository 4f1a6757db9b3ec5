"""The render budget without a database: one budget per render, over all loops and fields, and
filters whose cost is linear in their input."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from gateway.core import budget
from gateway.core.personalize import TemplateTooCostly, compile_content, strip_html, uniq
from tests.unit.test_personalize import content, render


def too_costly(source: dict[str, Any], context: dict[str, Any] | None = None) -> str:
    with pytest.raises(TemplateTooCostly) as caught:
        compile_content(source).render(context or {})
    assert caught.value.status == 422 and caught.value.code == "template_too_costly"
    return caught.value.message


def loop(n: int, body: str = "") -> str:
    return f"{{% for i in (1..{n}) %}}{body}{{% endfor %}}"


def test_iterations_count_over_every_loop_of_the_render() -> None:
    half = budget.MAX_ITERATIONS // 2
    assert render(loop(half) + loop(half)) == ""
    # Loops in a row add up: the old per-loop limit let each one run its full 10,000.
    assert "more than 10000 loop iterations" in too_costly(content(body=loop(half) + loop(half + 1)))
    # A loop in a loop counts its iterations each time it runs.
    assert "loop iterations" in too_costly(content(body=loop(100, loop(100))))
    # The fields of one message share the budget.
    assert "content.body" in too_costly(content(title=loop(half), body=loop(half + 1)))


def test_each_person_gets_a_fresh_budget() -> None:
    compiled = compile_content(content(body=loop(budget.MAX_ITERATIONS, ".")))
    for _ in range(3):
        assert compiled.render({})["body"] == "." * budget.MAX_ITERATIONS


def test_output_counts_every_character_written_captures_included() -> None:
    chunk = "x" * 100
    # Captured and then never shown, it still cost the writing.
    capture = "{% capture c %}" + loop(2001, chunk) + "{% endcapture %}"
    assert "more than 200000 characters" in too_costly(content(body=capture))
    assert render("{% capture c %}" + loop(100, chunk) + "{% endcapture %}{{ c | size }}") == "10000"


def test_time_is_bounded_even_within_the_iteration_and_output_limits() -> None:
    # Each iteration walks 100,000 items and writes a few characters: only the clock stops it.
    source = content(body=loop(50, "{{ (1..99999) | where: 5, 5000 | size }}"))
    start = time.thread_time()
    assert "ms of CPU time" in too_costly(source)
    # One filter call may finish after the deadline, never many.
    assert time.thread_time() - start < budget.MAX_RENDER_S + 2


@pytest.mark.parametrize(
    ("text", "stripped"),
    [
        ("<b>bold</b> text", "bold text"),
        ("a <script>alert(1)</script>b", "a b"),
        ("a <!-- note --> b <style>p {}</style>c", "a  b c"),
        ("<p class='x'>hi</p>", "hi"),
        # Shopify's rule: anything from `<` to the next `>` is a tag.
        ("1 < 2 and 3 > 2", "1  2"),
        # With no `>` after it, a `<` is text.
        ("<a<a<a", "<a<a<a"),
        ("<a<a<a>", ""),
        ("x <script> never closed <b>y</b>", "x  never closed y"),
        ("", ""),
    ],
)
def test_strip_html_removes_tags_as_shopify_does(text: str, stripped: str) -> None:
    assert strip_html(text) == stripped


@pytest.mark.parametrize(
    "text", ["<a" * 50_000, "<a" * 49_999 + ">", "<script" * 14_000 + ">", "<!--<a" * 16_000, "<a b='" * 16_000 + ">"]
)
def test_strip_html_is_linear_on_what_made_the_old_one_quadratic(text: str) -> None:
    start = time.thread_time()
    strip_html(text)
    # A linear pass over 100,000 characters takes well under a millisecond; the old parser took
    # seconds on inputs like these. The bound is far from both: it tells them apart, not speed.
    assert time.thread_time() - start < 0.5


def test_uniq_keeps_first_of_equal_items_like_liquid() -> None:
    assert uniq([1, 1.0, True, 2, "a", "a", {"a": 1}, {"a": 1}, None, None]) == [1, 2, "a", {"a": 1}, None]
    assert uniq([{"a": 1, "b": 2}, {"a": 1, "b": 3}, {"b": 1}], "a") == [{"a": 1, "b": 2}, {"b": 1}]
    start = time.thread_time()
    assert len(uniq([{"n": i % 7} for i in range(20_000)])) == 7
    assert len(uniq(list(range(99_999)))) == 99_999
    assert time.thread_time() - start < 5  # the quadratic one took minutes on these


async def test_off_loop_runs_in_a_render_thread() -> None:
    name = await budget.off_loop(lambda: threading.current_thread().name)
    assert name.startswith("mailslot-render")
