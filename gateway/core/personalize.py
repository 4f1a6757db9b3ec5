"""Liquid personalization: every text field of a message's content is a template.

python-liquid (a faithful, maintained implementation of Shopify's Liquid) renders templates
with `customer` (the person's attributes, plus `id` and `email`), `event` (a triggered
message's event: `name` and `data`) and `data` (a send's own values). Rendering happens when a
message is queued; a template that does not parse, or in strict mode a variable that is
missing, is a 422 naming the field, the line and the reason, never a broken message later.
Output is plain text: devices put it in the page as text, so nothing here escapes HTML.

Templates come from API callers (and a trigger's event data from devices), so rendering is
bounded twice. Each value has limits: every filter's input and output, local variables, and
every filter costs time linear in its input (`strip_html` is ours for that reason). Each render
has one budget (budget.py) for all its templates: loop iterations, output and CPU time, over
which it is 422 `template_too_costly`. Callers render in a render thread (`budget.off_loop`),
never on the event loop. Any other limit reached is a 422 like any other template error, and
the rendered content must still be valid content (lengths, URL schemes).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import msgspec
from liquid import BoundTemplate, Environment, StrictDefaultUndefined
from liquid.exceptions import FilterArgumentError, LiquidError
from liquid.filter import sequence_filter

from storage import AudienceMember, Person

from ..errors import TemplateError, TemplateTooCostly
from .budget import Budget, OverBudget, render_within
from .content import Content

__all__ = [
    "TEXT_FIELDS",
    "CompiledContent",
    "TemplateError",
    "TemplateTooCostly",
    "compile_content",
    "customer_of",
    "has_templates",
]

# The content fields that are templates; action names are identifiers, not text.
TEXT_FIELDS = ("title", "body", "image_url")
_ACTION_TEXT = ("label", "url")

# How big any one value may grow while rendering: characters of a string, items of a list or
# range (plus the characters of its string items). Content fields are at most 10,000 characters.
MAX_VALUE_SIZE = 100_000
# Integers beyond this many bits are refused (Python cannot even print one of 4,300 digits).
_MAX_INT_BITS = 1024


class _Bounded(Environment):
    """Liquid with resource limits; loops and output are charged to the render's budget instead."""

    local_namespace_limit: ClassVar[int | None] = MAX_VALUE_SIZE


# Types are tested with type(), never isinstance(): isinstance() reads `__class__`, which a strict
# undefined answers by raising, and `default` must still see it.
def _size(value: Any) -> int:
    kind = type(value)
    if issubclass(kind, str | dict):
        return len(value)
    if kind is range:  # len() of a huge range overflows
        return max(0, int(value.stop - value.start) // int(value.step or 1))
    if issubclass(kind, list | tuple):
        return len(value) + sum(len(v) for v in value if type(v) is str)
    return 0


def _check_value(name: str, value: Any) -> None:
    if _size(value) > MAX_VALUE_SIZE:
        raise FilterArgumentError(f"{name}: a value grew beyond {MAX_VALUE_SIZE} characters or items", token=None)
    if type(value) is int and value.bit_length() > _MAX_INT_BITS:
        raise FilterArgumentError(f"{name}: a number grew too large", token=None)


def _guard(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that refuses oversized inputs and outputs, and whose Python errors name it."""

    @functools.wraps(func)  # keeps `with_environment` and other markers Liquid reads
    def guarded(left: object, *args: object, **kwargs: object) -> object:
        for value in (left, *args):
            _check_value(name, value)
        # The two filters whose output can be a product of their inputs' sizes.
        if name == "join" and type(left) in (list, tuple, range):
            separator = args[0] if args else kwargs.get("separator", " ")
            if _size(left) * max(1, len(str(separator))) > MAX_VALUE_SIZE:
                raise FilterArgumentError(f"join: the result would exceed {MAX_VALUE_SIZE} characters", token=None)
        if name == "replace" and type(left) is str and len(args) >= 2:
            if left.count(str(args[0])) * len(str(args[1])) > MAX_VALUE_SIZE:
                raise FilterArgumentError(
                    f"replace: the result would exceed {MAX_VALUE_SIZE} characters", token=None
                )
        try:
            result = func(left, *args, **kwargs)
        except (ValueError, ArithmeticError, RecursionError) as exc:
            raise FilterArgumentError(f"{name}: {exc}", token=None) from None
        _check_value(name, result)
        return result

    return guarded


# Shopify's strip_html: blocks whose content goes too, then any other tag (`<` to the next `>`).
_STRIPPED_BLOCKS = (("<script", "</script>"), ("<!--", "-->"), ("<style", "</style>"))


def strip_html(value: object) -> str:
    """The text without HTML tags, in one pass: Python's HTMLParser is quadratic on `<a<a<a…`.

    A block with no end after it is a plain tag, and so is every later one of its kind; a `<`
    with no `>` after it is text, and so is the rest. No end is looked for twice over the same
    text, which keeps it linear.
    """
    text = "" if value is None else str(value)
    out: list[str] = []
    unclosed: set[str] = set()
    pos = 0
    while (start := text.find("<", pos)) != -1:
        end = -1
        for opener, closer in _STRIPPED_BLOCKS:
            if closer not in unclosed and text.startswith(opener, start):
                found = text.find(closer, start + len(opener))
                if found == -1:
                    unclosed.add(closer)
                else:
                    end = found + len(closer)
                    break
        if end == -1 and ">" not in unclosed:
            found = text.find(">", start + 1)
            if found == -1:
                unclosed.add(">")
            else:
                end = found + 1
        if end == -1:  # no `>` after this `<`, so no tag or block can end: the rest is text
            break
        out.append(text[pos:start])
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _frozen(value: Any) -> Any:
    """A hashable stand-in equal exactly when the values are equal (dicts and lists included)."""
    kind = type(value)
    if kind is dict:
        return ("dict", frozenset((k, _frozen(v)) for k, v in value.items()))
    if kind is list or kind is tuple:
        return (kind.__name__, tuple(_frozen(v) for v in value))
    try:
        hash(value)
    except TypeError:
        return ("object", id(value))
    return value


_MISSING = object()


@sequence_filter
def uniq(sequence: list[Any], key: object = None) -> list[Any]:
    """The items without repeats, the first of each kept: Liquid's `uniq` is quadratic."""
    seen: set[Any] = set()
    result = []
    for item in sequence:
        if key is None:
            mark = _frozen(item)
        else:
            try:
                mark = _frozen(item[key])
            except KeyError:
                mark = _MISSING
            except TypeError:
                raise FilterArgumentError(f"can't read property '{key}' of {item}", token=None) from None
        if mark not in seen:
            seen.add(mark)
            result.append(item)
    return result


def _environment(**options: Any) -> Environment:
    env = _Bounded(autoescape=False, **options)
    # Linear replacements for the two built-in filters whose cost grows faster than their input.
    env.filters["strip_html"] = strip_html
    env.filters["uniq"] = uniq
    env.filters = {name: _guard(name, func) for name, func in env.filters.items()}
    return env


_LENIENT = _environment()
# Strict: a missing variable is an error, unless the template gives it a `default`.
_STRICT = _environment(undefined=StrictDefaultUndefined)


def has_templates(content: Mapping[str, Any]) -> bool:
    """Whether any text field holds Liquid markup (plain content skips rendering entirely)."""
    return any(("{{" in text or "{%" in text) for _, text in _texts(content))


def customer_of(person: Person | AudienceMember) -> dict[str, Any]:
    """`customer` in a template: the person's attributes with `id` and `email` as stored.

    The attributes are the backend's, plus the device's the workspace lists where storage read
    them (`readable_attributes`; decision 0012); a device's own never reach a template otherwise.
    An id or email the person does not have is absent, not null, so that strict mode flags it.
    """
    readable = person.readable_attributes if isinstance(person, Person) else None
    customer = dict(person.attributes if readable is None else readable)
    for key, value in (("id", person.external_id), ("email", person.email)):
        customer.pop(key, None)
        if value is not None:
            customer[key] = value
    return customer


def _texts(content: Mapping[str, Any]) -> list[tuple[str, str]]:
    found = [(name, content[name]) for name in TEXT_FIELDS if isinstance(content.get(name), str)]
    for index, action in enumerate(content.get("actions") or []):
        for name in _ACTION_TEXT:
            if isinstance(action.get(name), str):
                found.append((f"actions[{index}].{name}", action[name]))
    return found


def _describe(field: str, text: str, exc: Exception) -> str:
    """`template error in content.body (line 2): 'plan' is undefined`."""
    lines = str(exc).strip().splitlines()
    reason = getattr(exc, "message", None) or (lines[0] if lines else type(exc).__name__)
    token = getattr(exc, "token", None)
    start = getattr(token, "start_index", -1)
    # A token at -1 is the end of the template: an unclosed tag reports its last line.
    line = text.count("\n", 0, start) + 1 if isinstance(start, int) and start >= 0 else text.count("\n") + 1
    return f"template error in content.{field} (line {line}): {reason}"


def _checked(rendered: dict[str, Any]) -> dict[str, Any]:
    """Rendered content is content: an empty URL means none; lengths and URL schemes still hold."""
    if rendered.get("image_url") == "":
        rendered["image_url"] = None
    for action in rendered["actions"]:
        if action.get("url") == "":
            action["url"] = None
    try:
        msgspec.convert(rendered, Content, strict=True)
    except msgspec.ValidationError as exc:
        raise TemplateError(f"the rendered content is invalid: {str(exc).replace('`$', '`content')}") from None
    return rendered


@dataclass(frozen=True, slots=True)
class CompiledContent:
    """Content whose templates parsed: render it once per person."""

    content: Mapping[str, Any]
    templates: Mapping[str, BoundTemplate]
    sources: Mapping[str, str]

    def render(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """The content with every template rendered against `context`, within one budget.

        422 on a render error; 422 `template_too_costly` over budget. It takes up to the budget's
        time: call it through `budget.off_loop`, not on the event loop.
        """
        rendered: dict[str, Any] = dict(self.content)
        rendered["actions"] = [dict(a) for a in self.content.get("actions") or []]
        if not self.templates:
            return rendered
        budget = Budget()
        for field, template in self.templates.items():
            try:
                text = render_within(template, dict(context), budget)
            except OverBudget as exc:
                raise TemplateTooCostly(
                    f"template too costly in content.{field}: {exc.reason} for one person; "
                    "make the templates do less work"
                ) from None
            # A template is the caller's code: whatever it raises is the caller's error.
            except Exception as exc:
                raise TemplateError(_describe(field, self.sources[field], exc)) from None
            if field.startswith("actions["):
                index, name = field[len("actions["):].split("].")
                rendered["actions"][int(index)][name] = text
            else:
                rendered[field] = text
        return _checked(rendered)


def compile_content(content: Mapping[str, Any], *, strict: bool = False) -> CompiledContent:
    """Parse every template of the content now, so a broken one fails the send, not the poll."""
    env = _STRICT if strict else _LENIENT
    templates: dict[str, BoundTemplate] = {}
    sources: dict[str, str] = {}
    for field, text in _texts(content):
        if "{{" not in text and "{%" not in text:
            continue
        try:
            templates[field] = env.from_string(text)
        except (LiquidError, ValueError, RecursionError) as exc:
            raise TemplateError(_describe(field, text, exc)) from None
        _check_filters(env, field, text, templates[field])
        sources[field] = text
    return CompiledContent(content, templates, sources)


def _check_filters(env: Environment, field: str, text: str, template: BoundTemplate) -> None:
    """Liquid finds an unknown filter only when it runs; a stored template must fail when stored."""
    try:
        used = template.analyze().filters
    except (LiquidError, ValueError, RecursionError):  # rendering reports what analysis cannot
        return
    for name, spans in used.items():
        if name not in env.filters:
            line = text.count("\n", 0, max(0, spans[0].index)) + 1 if spans else 1
            raise TemplateError(f"template error in content.{field} (line {line}): unknown filter '{name}'")
