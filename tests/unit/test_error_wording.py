"""Every error message the app can produce reads the same way: one sentence, what was wrong and
how to fix it, the field named as docs/api.md names it, none of the libraries' own wording.

The messages a request can cause are checked where they are caused (tests/http/test_bad_input.py
applies the same rule to all of its rows); this module checks the defaults of every error class
and the rewording of every form of validation error msgspec produces.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway import errors
from gateway.http.schemas import (
    BroadcastRequest,
    EventsRequest,
    PollRequest,
    SendRequest,
    TriggerRequest,
    WorkspacePatch,
    parse_body,
)
from tests.helpers import assert_message_style

ERROR_CLASSES = [
    cls for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, errors.ApiError)
]


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_every_default_message_keeps_the_style(cls: type[errors.ApiError]) -> None:
    error = cls("requests", retry_after_s=3) if cls is errors.RateLimited else cls()
    assert_message_style(error.message)


SITE = {"site_id": "s", "user": "u", "device_id": "d"}
SEND = {"to": {"id": "ada"}, "content": {"title": "Hi"}}
ID = "3f2b8c1e-5d4a-4e7b-9c1d-2a6f8e0b7c54"

# (request type, body, a phrase the message must contain, where)
CASES: list[tuple[type, dict[str, Any], str, str]] = [
    (SendRequest, {**SEND, "template_id": "x", "content": None}, "must be a UUID", "$.template_id"),
    (SendRequest, {"content": {"title": "Hi"}}, "the required field `to` is missing", "$"),
    (SendRequest, {**SEND, "priority": "high"}, "`priority` must be a whole number, not a string", "$.priority"),
    (SendRequest, {**SEND, "priority": 5000}, "`priority` must be at most 1000", "$.priority"),
    (SendRequest, {**SEND, "priority": -5000}, "`priority` must be at least -1000", "$.priority"),
    (SendRequest, {**SEND, "content": {"title": "t", "layout": "popup"}},
     "`layout` must be one of banner_bottom, banner_top, inline, modal", "$.content.layout"),
    (SendRequest, {**SEND, "colour": "red"}, "`colour` is not a field here", "$"),
    (SendRequest, {**SEND, "to": {"id": "a", "phone": "1"}}, "`phone` is not a field here", "$.to"),
    (SendRequest, {**SEND, "content": {"title": "t", "image_url": "ftp://x"}},
     "`image_url` must be a URL that starts with https://, http:// or /", "$.content.image_url"),
    (SendRequest, {"to": {"email": "nope"}, "content": {"title": "t"}}, "`email` must be an email address",
     "$.to.email"),
    (SendRequest, {**SEND, "expires_at": "tomorrow"}, "`expires_at` must be a time", "$.expires_at"),
    (SendRequest, {**SEND, "expires_at": 1.5}, "`expires_at` must be a time", "$.expires_at"),
    (SendRequest, {**SEND, "persistent": "yes"}, "`persistent` must be true or false, not a string",
     "$.persistent"),
    (SendRequest, {**SEND, "content": {"title": "t", "actions": [{"name": "a"}]}},
     "the required field `label` is missing", "$.content.actions[0]"),
    (SendRequest, {**SEND, "content": {"title": "t", "actions": [{"name": "a", "label": "A"}] * 11}},
     "`actions` takes at most 10 items", "$.content.actions"),
    (SendRequest, {**SEND, "campaign": ""}, "`campaign` must not be empty", "$.campaign"),
    (SendRequest, {**SEND, "content": {"title": "x" * 1001}}, "`title` takes at most 1000 characters",
     "$.content.title"),
    (PollRequest, {**SITE, "device_id": "my phone"}, "`device_id` must be letters, digits and . _ : - only",
     "$.device_id"),
    (PollRequest, {**SITE, "wait": "long"}, "`wait` must be a number, not a string", "$.wait"),
    (PollRequest, {**SITE, "site_id": ""}, "`site_id` must not be empty", "$.site_id"),
    (EventsRequest, {**SITE, "events": []}, "`events` must not be empty", "$.events"),
    (EventsRequest, {**SITE, "events": [{"message_id": ID, "type": "seen"}]},
     "`type` must be one of action, dismissed, shown", "$.events[0].type"),
    (EventsRequest, {**SITE, "events": [{"message_id": "x", "type": "shown"}]}, "`message_id` must be a UUID",
     "$.events[0].message_id"),
    (BroadcastRequest, {"audience": {"ids": "ada"}, "content": {"title": "t"}}, "`ids` must be a list or null",
     "$.audience.ids"),
    (TriggerRequest, {"event": "e", "message": {"content": {"title": "t"}}, "reentry": "twice"},
     "`reentry` must be one of every_time, once", "$.reentry"),
    (WorkspacePatch, {"identity_mode": "strict"}, "`identity_mode` must be one of off, optional, required",
     "$.identity_mode"),
    (WorkspacePatch, {"lease_s": 1}, "`lease_s` must be at least 5", "$.lease_s"),
]


@pytest.mark.parametrize(("kind", "body", "phrase", "where"), CASES, ids=[f"{c[0].__name__}-{c[3]}" for c in CASES])
def test_validation_errors_are_reworded(kind: type, body: dict[str, Any], phrase: str, where: str) -> None:
    with pytest.raises(errors.Unprocessable) as caught:
        parse_body(orjson.dumps(body), kind)
    message = caught.value.message
    assert phrase in message, message
    assert message.endswith(f" - at `{where}`"), message
    assert_message_style(message)
