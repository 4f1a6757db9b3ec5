"""Liquid personalization without a database: context, strictness, error messages and limits."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.core.personalize import TemplateError, compile_content, customer_of, has_templates
from gateway.core.sends import Personalization, personalized
from storage import Person


def content(**fields: Any) -> dict[str, Any]:
    """Content in the stored shape (every field present), as `sends.content_of` makes it."""
    base: dict[str, Any] = {
        "title": None, "body": None, "image_url": None, "actions": [], "layout": "modal", "element_id": None,
    }
    return base | fields


def render(text: str, context: dict[str, Any] | None = None, *, strict: bool = False) -> str:
    rendered = compile_content(content(body=text), strict=strict).render(context or {})
    return str(rendered["body"])


def error_of(text: str, context: dict[str, Any] | None = None, *, strict: bool = False) -> str:
    with pytest.raises(TemplateError) as caught:
        render(text, context, strict=strict)
    assert caught.value.status == 422 and caught.value.code == "invalid_template"
    return caught.value.message


def test_every_text_field_renders_and_the_rest_is_kept() -> None:
    source = content(
        title="Hi {{ customer.first_name }}",
        body="Plan {{ data.plan }}",
        image_url="https://cdn.example.com/{{ customer.id }}.png",
        actions=[{"name": "go_{{ x }}", "label": "Open {{ data.plan }}", "url": "/plans/{{ data.plan }}"}],
        layout="banner_top",
    )
    rendered = compile_content(source).render({"customer": {"first_name": "Ada", "id": "u1"}, "data": {"plan": "pro"}})
    assert rendered == content(
        title="Hi Ada",
        body="Plan pro",
        image_url="https://cdn.example.com/u1.png",
        # The action's name is an identifier, never a template.
        actions=[{"name": "go_{{ x }}", "label": "Open pro", "url": "/plans/pro"}],
        layout="banner_top",
    )
    assert source["title"] == "Hi {{ customer.first_name }}", "the source content is not modified"


def test_output_is_text_never_escaped() -> None:
    hostile = "<img src=x onerror=alert(1)>"
    assert render("Hi {{ customer.name }}", {"customer": {"name": hostile}}) == f"Hi {hostile}"


def test_plain_content_is_not_a_template() -> None:
    assert not has_templates(content(title="Use {braces} and 100% } {"))
    assert has_templates(content(actions=[{"name": "a", "label": "{{ x }}", "url": None}]))
    plain = content(title="Use {braces}")
    assert personalized(plain, Personalization({}, strict=True)) is None


def test_a_templated_send_becomes_a_function_of_the_person() -> None:
    render_for = personalized(content(title="Hi {{ customer.first_name | default: 'there' }}, {{ data.n }}"),
                              Personalization({"n": 3}, strict=True))
    assert callable(render_for)
    ada = Person(id=1, external_id="u1", email=None, attributes={"first_name": "Ada"})
    nobody = Person(id=2, external_id="u2", email=None, attributes={})
    assert render_for(ada)["title"] == "Hi Ada, 3"
    assert render_for(nobody)["title"] == "Hi there, 3"


def test_customer_is_the_attributes_with_id_and_email_as_stored() -> None:
    person = Person(id=7, external_id="u1", email="ada@example.com", attributes={"first_name": "Ada", "id": "spoof"})
    assert customer_of(person) == {"first_name": "Ada", "id": "u1", "email": "ada@example.com"}
    # What the person does not have is absent, so that strict mode can flag it.
    by_email = Person(id=8, external_id=None, email="bo@example.com", attributes={"id": "spoof"})
    assert customer_of(by_email) == {"email": "bo@example.com"}


def test_strict_mode_refuses_a_missing_variable_unless_it_has_a_default() -> None:
    assert render("Hi {{ customer.first_name }}!", {"customer": {}}) == "Hi !"
    message = error_of("Hello\nHi {{ customer.first_name }}!", {"customer": {}}, strict=True)
    assert message == "template error in content.body (line 2): customer.first_name is undefined"
    assert render("Hi {{ customer.first_name | default: 'there' }}", {"customer": {}}, strict=True) == "Hi there"
    assert render("Hi {{ customer.first_name }}", {"customer": {"first_name": "Ada"}}, strict=True) == "Hi Ada"


@pytest.mark.parametrize(
    ("source", "line", "reason"),
    [
        pytest.param("Hi {{ customer.first_name", 1, "expected '}}'", id="unclosed-output"),
        pytest.param("one\ntwo\n{% if %}yes{% endif %}", 3, "missing expression", id="empty-if"),
        pytest.param("a\n{% for x in items %}", 2, "endfor", id="unclosed-for"),
        pytest.param("{% nosuchtag %}", 1, "nosuchtag", id="unknown-tag"),
        pytest.param("x\n\n{{ name | nosuchfilter }}", 3, "unknown filter 'nosuchfilter'", id="unknown-filter"),
    ],
)
def test_a_template_that_does_not_parse_names_field_line_and_reason(source: str, line: int, reason: str) -> None:
    message = error_of(source, {"name": "x", "items": []})
    assert message.startswith(f"template error in content.body (line {line}): "), message
    assert reason in message


def test_errors_name_the_action_field() -> None:
    source = content(title="t", actions=[{"name": "a", "label": "ok", "url": None},
                                         {"name": "b", "label": "{{ oops", "url": None}])
    with pytest.raises(TemplateError, match=r"content\.actions\[1\]\.label \(line 1\)"):
        compile_content(source)


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        pytest.param("{{ (1..100000000) | join: ',' }}", "join:", id="huge-range-join"),
        pytest.param("{{ data.s | replace: 'a', data.s }}", "replace:", id="replace-blowup"),
        pytest.param("{% assign a = 'xxxxxxxxxx' %}" + "{% assign a = a | append: a %}" * 40 + "{{ a }}",
                     "grew beyond 100000", id="doubling-assign"),
        pytest.param("{{ 10" + " | times: 9999999999" * 500 + " }}", "too large", id="huge-number"),
        pytest.param("{{ 1 | divided_by: 0 }}", "divide by 0", id="division-by-zero"),
        pytest.param("{% include 'other' %}", "line 1", id="include-has-no-loader"),
    ],
)
def test_rendering_is_bounded_and_every_failure_is_a_422(source: str, reason: str) -> None:
    assert reason in error_of(source, {"data": {"s": "a" * 5000}})


def test_default_still_sees_a_strict_undefined_through_the_filter_guard() -> None:
    assert render("{{ x | default: 'y' | upcase }}", strict=True) == "Y"


def test_rendered_content_must_still_be_valid_content() -> None:
    long = "a" * 10_001
    with pytest.raises(TemplateError, match=r"rendered content is invalid: .*length <= 10000.* `content\.body`"):
        compile_content(content(body="{{ data.s }}")).render({"data": {"s": long}})
    # An empty URL after rendering means none, not an invalid URL.
    rendered = compile_content(
        content(title="t", image_url="{% if data.img %}https://x.test/a.png{% endif %}",
                actions=[{"name": "a", "label": "Go", "url": "{{ data.link }}"}])
    ).render({"data": {}})
    assert rendered["image_url"] is None and rendered["actions"][0]["url"] is None


def test_an_unknown_filter_is_found_when_parsing_not_only_when_rendering() -> None:
    """A stored template is parsed once and rendered later: it must fail when stored."""
    source = content(body="ok\n{% if data.x %}\n{{ data.x | shout }}\n{% endif %}")
    with pytest.raises(TemplateError, match=r"content\.body \(line 3\): unknown filter 'shout'"):
        compile_content(source)
