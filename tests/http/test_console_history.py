"""The console's messages, broadcasts, campaigns and triggers pages: lists, funnels, recall, resend,
create and delete; each form's bad input answered on the form; every console route refuses a
missing, forged or expired session and a missing CSRF token."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from gateway.core.clock import FixedClock
from gateway.core.history import bucket_width, funnel_of
from gateway.http.access import Access
from gateway.http.routes import ROUTES
from storage import FunnelCount
from tests.helpers import Api
from tests.http.test_console import Console, signed_in

PRO = '{"attribute": "plan_name", "op": "eq", "value": "pro"}'


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "00000000-0000-4000-8000-000000000000", path)


CONSOLE_ROUTES = [(r.method, r.path) for r in ROUTES if r.access is Access.CONSOLE]


@pytest.mark.parametrize(("method", "path"), CONSOLE_ROUTES)
@pytest.mark.parametrize("cookie", [None, "forged", "expired"])
async def test_every_console_route_refuses_a_missing_forged_or_expired_session(
    api: Api, clock: FixedClock, method: str, path: str, cookie: str | None
) -> None:
    if cookie == "expired":
        await signed_in(api)
        clock.advance(hours=13)
    elif cookie == "forged":
        api.client.session.cookie_jar.update_cookies({"mailslot_console": "forged"})
    async with api.client.request(method, _concrete(path), allow_redirects=False, data={"confirm": "yes"}) as reply:
        if method == "GET" and not path.startswith("/console/api/"):
            assert reply.status == 303 and reply.headers["Location"].startswith("/console/sign-in")
        else:
            assert reply.status == 401


@pytest.mark.parametrize("path", [p for m, p in CONSOLE_ROUTES if m == "POST"])
async def test_every_unsafe_console_route_refuses_a_missing_or_wrong_csrf_token(api: Api, path: str) -> None:
    browser = await signed_in(api)
    for data in ({"confirm": "yes"}, {"confirm": "yes", "csrf": "forged"}):
        async with api.client.post(_concrete(path), data=data, allow_redirects=False) as reply:
            assert reply.status == 403, path
    assert browser.csrf  # the session itself still works
    status, _ = await browser.page("/console")
    assert status == 200


async def _broadcast(api: Api, browser: Console, title: str = "For pros", **fields: str) -> str:
    status, text, _ = await browser.post("/console/compose", {
        "do": "broadcast", "audience": "filter", "audience_value": PRO, "title": title, **fields,
    })
    assert status == 201, text
    found = re.search(r'href="/console/broadcasts/([0-9a-f-]+)"', text)
    assert found
    return found.group(1)


async def test_messages_list_counts_states_pages_newest_first_and_filters(api: Api, clock: FixedClock) -> None:
    browser = await signed_in(api)
    sent = []
    for i in range(27):
        clock.advance(seconds=1)
        sent.append((await api.send("ada", f"Message {i:02d}")).body["id"])
    await api.recall(sent[0])
    status, text = await browser.page("/console/messages")
    assert status == 200
    assert re.search(r"queued <strong>26</strong>", text) and re.search(r"recalled <strong>1</strong>", text)
    titles = re.findall(r">Message (\d\d)</a>", text)
    assert titles == [f"{i:02d}" for i in range(26, 1, -1)]  # 25, newest first
    older = re.search(r'href="(/console/messages\?before=[^"]+)" rel="next"', text)
    assert older
    status, text = await browser.page(older.group(1).replace("&amp;", "&"))
    assert status == 200 and re.findall(r">Message (\d\d)</a>", text) == ["01", "00"]
    assert 'rel="next"' not in text
    status, text = await browser.page("/console/messages?state=recalled")
    assert re.findall(r">Message (\d\d)</a>", text) == ["00"]
    for bad in ("/console/messages?state=nope", "/console/messages?before=garbage",
                "/console/messages?before=2026-01-01T00:00:00~x", "/console/messages?before=2026-01-01~" + sent[0]):
        status, text = await browser.page(bad)
        assert status == 422 and "<html" in text and 'class="error"' in text, bad


async def test_a_message_page_shows_its_events_and_recalls_once_confirmed(api: Api) -> None:
    browser = await signed_in(api)
    await api.patch_workspace(identity_mode="off")
    waiting = (await api.send("ada", "Waiting")).body["id"]
    shown = (await api.send("bob", "Seen")).body["id"]
    await api.poll("bob", "phone")
    await api.show("bob", "phone", shown)
    status, text = await browser.page(f"/console/messages/{waiting}")
    assert status == 200 and 'id="recall-form"' in text
    status, text, _ = await browser.post(f"/console/messages/{waiting}/recall", {})
    assert status == 422 and "Tick the confirmation" in text
    assert (await api.message(waiting)).body["state"] == "queued"
    status, _, location = await browser.post(f"/console/messages/{waiting}/recall", {"confirm": "yes"})
    assert (status, location) == (303, f"/console/messages/{waiting}?done=recalled")
    assert (await api.message(waiting)).body["state"] == "recalled"
    status, text = await browser.page(f"/console/messages/{shown}")
    assert "shown" in text and "phone" in text and 'id="recall-form"' not in text
    status, text, _ = await browser.post(f"/console/messages/{shown}/recall", {"confirm": "yes"})
    assert status == 409 and "already shown" in text and "<html" in text
    for bad in ("nope", "00000000-0000-4000-8000-000000000000"):
        status, text = await browser.page(f"/console/messages/{bad}")
        assert status == 404 and "<html" in text
        status, text, _ = await browser.post(f"/console/messages/{bad}/recall", {"confirm": "yes"})
        assert status == 404 and "<html" in text


async def test_a_broadcast_shows_its_funnel_and_is_recalled_and_resent_from_its_page(
    api: Api, clock: FixedClock
) -> None:
    browser = await signed_in(api)
    await api.patch_workspace(identity_mode="off")
    for user, plan in (("ada", "pro"), ("bob", "free"), ("cy", "pro"), ("di", "pro")):
        await api.identify(user, plan_name=plan)
    broadcast = await _broadcast(api, browser, campaign="spring")
    clock.advance(minutes=3)
    offered = (await api.poll("ada", "laptop")).body["messages"][0]["id"]
    await api.show("ada", "laptop", offered)
    await api.report("ada", "laptop", {"message_id": offered, "type": "action", "action": "action_1"})
    clock.advance(minutes=5)
    status, text = await browser.page("/console/broadcasts")
    assert status == 200 and f"/console/broadcasts/{broadcast}" in text and "3 sent" in text
    assert "filter <code>" in text and "spring" in text
    status, text = await browser.page(f"/console/broadcasts/{broadcast}")
    assert status == 200 and "<svg" in text and 'data-step="shown"' in text
    bars = dict(re.findall(r'<li data-step="(\w+)">.*?<strong class="n">(\d+)</strong>', text, re.S))
    assert bars == {"queued": "3", "shown": "1", "action": "1", "dismissed": "0", "expired": "0", "recalled": "0"}
    assert "http://" not in text.split("<svg", 1)[1].split("</svg>")[0].replace("http://www.w3.org/2000/svg", "")

    status, text, _ = await browser.post(f"/console/broadcasts/{broadcast}/recall", {})
    assert status == 422 and "Tick the confirmation" in text
    status, _, location = await browser.post(f"/console/broadcasts/{broadcast}/recall", {"confirm": "yes"})
    assert (status, location) == (303, f"/console/broadcasts/{broadcast}?done=recalled&n=2")
    status, text = await browser.page(location)
    assert "Recalled: 2 unshown copies taken back" in text
    bars = dict(re.findall(r'<li data-step="(\w+)">.*?<strong class="n">(\d+)</strong>', text, re.S))
    assert bars["recalled"] == "2" and bars["shown"] == "1"
    status, text, _ = await browser.post(f"/console/broadcasts/{broadcast}/resend", {"confirm": "yes"})
    assert status == 409 and "cannot be resent" in text and "<html" in text

    other = await _broadcast(api, browser, "Again")
    status, text, _ = await browser.post(f"/console/broadcasts/{other}/resend", {})
    assert status == 422
    status, _, location = await browser.post(f"/console/broadcasts/{other}/resend", {"confirm": "yes"})
    assert (status, location) == (303, f"/console/broadcasts/{other}?done=resent&n=3")
    status, text = await browser.page(f"/console/broadcasts/{other}")
    assert re.search(r'<li data-step="queued">.*?<strong class="n">6</strong>', text, re.S)

    status, text = await browser.page("/console/campaigns?name=spring")
    assert status == 200 and "Campaign “spring”" in text and "<svg" in text
    for bad in ("/console/campaigns", "/console/campaigns?name=nothing", "/console/campaigns?name=%00",
                "/console/campaigns?name=" + "x" * 300, "/console/broadcasts/nope",
                "/console/broadcasts?before=nope"):
        status, text = await browser.page(bad)
        assert status in (404, 422) and "<html" in text and 'class="error"' in text, bad


async def test_resend_while_disabled_is_refused_on_the_page(api: Api) -> None:
    browser = await signed_in(api)
    await api.identify("ada", plan_name="pro")
    broadcast = await _broadcast(api, browser)
    await api.patch_workspace(in_app_enabled=False)
    status, text, _ = await browser.post(f"/console/broadcasts/{broadcast}/resend", {"confirm": "yes"})
    assert status == 409 and 'class="error"' in text and "<html" in text


async def test_triggers_are_created_listed_and_deleted_and_bad_input_stays_on_the_form(api: Api) -> None:
    browser = await signed_in(api)
    status, text = await browser.page("/console/triggers")
    assert status == 200 and "No active triggers yet" in text
    good = {"event": "signed_up", "filter": PRO, "reentry": "once", "layout": "modal",
            "title": "Welcome {{ customer.first_name }}", "body": "Glad you are here", "campaign": "onboarding"}
    bad_forms = [
        ({**good, "event": ""}, "event"),
        ({**good, "event": "x" * 65}, "event"),
        ({**good, "filter": "{nope"}, "filter"),
        ({**good, "filter": '{"attribute": "plan_name", "op": "nope"}'}, "filter"),
        ({**good, "filter": "[1, 2]"}, "filter"),
        ({**good, "title": "", "body": ""}, "title"),
        ({**good, "title": "{% if %}"}, "title"),
        ({**good, "reentry": "sometimes"}, "reentry"),
        ({**good, "template_id": "not-a-uuid"}, "template_id"),
        ({**good, "template_id": "00000000-0000-4000-8000-000000000000"}, "template_id"),
        ({**good, "action_label_0": "Open", "action_url_0": "javascript:alert(1)"}, ""),
    ]
    for form, _field in bad_forms:
        status, text, _ = await browser.post("/console/triggers", form)
        assert status == 422 and 'id="trigger-error"' in text and "<html" in text, (form, text[-600:])
        assert 'value="signed_up"' in text or form["event"] != "signed_up"  # what was typed is kept
    assert (await api.request("GET", "/v1/triggers")).body["triggers"] == []  # nothing half-saved

    status, _, location = await browser.post("/console/triggers", good)
    assert (status, location) == (303, "/console/triggers?done=created")
    triggers = (await api.request("GET", "/v1/triggers")).body["triggers"]
    assert len(triggers) == 1 and triggers[0]["reentry"] == "once"
    assert triggers[0]["filter"] == {"attribute": "plan_name", "op": "eq", "value": "pro"}
    trigger_id = triggers[0]["id"]
    status, text = await browser.page("/console/triggers?done=created")
    assert "Trigger created" in text and "signed_up" in text and "once per person" in text

    await api.identify("ada", plan_name="pro", first_name="Ada")
    fired = await api.request("POST", "/v1/people/ada/events", json={"name": "signed_up"})
    assert len(fired.body["queued"]) == 1

    status, text, _ = await browser.post(f"/console/triggers/{trigger_id}/delete", {})
    assert status == 422 and "Tick “confirm”" in text
    assert (await api.request("GET", "/v1/triggers")).body["triggers"][0]["enabled"] is True
    status, _, location = await browser.post(f"/console/triggers/{trigger_id}/delete", {"confirm": "yes"})
    assert (status, location) == (303, "/console/triggers?done=deleted")
    assert (await api.request("GET", "/v1/triggers")).body["triggers"][0]["enabled"] is False
    status, text = await browser.page("/console/triggers")
    assert "Deleted triggers" in text and "No active triggers yet" in text
    for bad in ("nope", "00000000-0000-4000-8000-000000000000"):
        status, text, _ = await browser.post(f"/console/triggers/{bad}/delete", {"confirm": "yes"})
        assert status == 404 and "<html" in text


async def test_a_trigger_can_send_a_saved_template(api: Api) -> None:
    browser = await signed_in(api)
    status, text, _ = await browser.post("/console/compose", {"do": "save", "template_name": "welcome",
                                                              "title": "Welcome"})
    assert status == 201
    template_id = (await api.request("GET", "/v1/templates")).body["templates"][0]["id"]
    status, text = await browser.page("/console/triggers")
    assert "template “welcome”" in text
    status, _, _ = await browser.post("/console/triggers", {"event": "joined", "template_id": template_id})
    assert status == 303
    status, text = await browser.page("/console/triggers")
    assert "template “welcome”" in text and "joined" in text


def test_the_bucket_width_keeps_a_chart_under_its_point_budget() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert bucket_width(start, start + timedelta(minutes=5)) == 10
    assert bucket_width(start, start + timedelta(minutes=10)) == 60
    assert bucket_width(start, start + timedelta(hours=2)) == 300
    assert bucket_width(start, start + timedelta(days=3)) == 3 * 3600
    assert bucket_width(start, start + timedelta(days=3000)) > 7 * 86400
    assert bucket_width(start, start - timedelta(days=1)) == 10  # a clock behind the data


def test_a_funnel_is_cumulative_and_ends_with_every_event() -> None:
    start = datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)
    bucket = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    counts = [FunnelCount(bucket, "queued", 3), FunnelCount(bucket + timedelta(minutes=2), "shown", 2),
              FunnelCount(bucket + timedelta(minutes=9), "shown", 1)]  # beyond the end: still counted
    funnel = funnel_of(counts, {"queued": 3}, start, start + timedelta(minutes=4), 60)
    assert funnel.points[0] == (bucket, dict.fromkeys(("queued", "shown", "action", "dismissed", "expired",
                                                        "recalled"), 0))
    assert [p[0].minute for p in funnel.points] == [0, 0, 1, 2, 3, 4, 4]
    assert [p[1]["queued"] for p in funnel.points] == [0, 3, 3, 3, 3, 3, 3]
    assert [p[1]["shown"] for p in funnel.points] == [0, 0, 0, 2, 2, 2, 3]
    assert funnel.points[-1][0] == start + timedelta(minutes=4)


async def test_the_person_page_says_when_a_device_will_next_ask(api: Api, clock: FixedClock) -> None:
    browser = await signed_in(api)
    await api.patch_workspace(identity_mode="off")
    await api.identify("ada")
    assert (await api.poll("ada", "laptop")).body["tier"] == "low"
    clock.advance(seconds=60)
    await api.send("ada", "Spring sale")
    clock.advance(seconds=30)
    status, text = await browser.page("/console/people?q=ada")
    assert status == 200
    assert ("“Spring sale” queued 30 s ago; no device has polled since (the last poll was 1 min ago, by laptop); "
            "their devices poll every 180 s, so the next poll is due in about 1 min") in text
    assert "low (every 180 s)" in text  # the laptop's tier as of its poll
    assert "active tier" in text  # a device polling now

    offered = (await api.poll("ada", "laptop")).body["messages"][0]["id"]
    status, text = await browser.page("/console/people?q=ada")
    assert "was offered to device laptop but not shown yet" in text and "lease ends in 5 min" in text
    await api.show("ada", "laptop", offered)
    status, text = await browser.page("/console/people?q=ada")
    assert "the latest message they saw, “Spring sale”, was shown on laptop" in text

    recalled = (await api.send("ada", "Too late")).body["id"]
    await api.recall(recalled)
    await api.patch_workspace(in_app_enabled=False)
    status, text = await browser.page("/console/people?q=ada")
    assert "“Too late”, sent 0 s ago, was recalled before any device showed it" in text
    assert "in-app messaging is off for this workspace" in text


async def test_the_person_page_names_identity_proof_when_no_device_ever_polled(api: Api) -> None:
    browser = await signed_in(api)
    await api.patch_workspace(identity_mode="required")
    await api.send("bob", "Hello")
    status, text = await browser.page("/console/people?q=bob")
    assert "no device has ever polled as this person" in text and "requires identity proof" in text
    await api.identify("cy")
    status, text = await browser.page("/console/people?q=cy")
    assert status == 200 and "no message has been sent to them yet" in text


@pytest.mark.parametrize("path", [p for m, p in CONSOLE_ROUTES if m == "POST" and not p.startswith("/console/api/")])
async def test_no_console_form_answers_500_to_odd_input(api: Api, path: str) -> None:
    browser = await signed_in(api)
    await api.identify("ada", plan_name="pro")
    message = (await api.send("ada", "x")).body["id"]
    odd: list[dict[str, str]] = [
        {"confirm": "yes", "event": "a\x00b", "title": "t\x00", "filter": '{"attribute": "a\\u0000"}'},
        {"confirm": "yes", "event": "e" * 100_000, "title": "t" * 100_000, "campaign": "c" * 5000},
        {"confirm": "no", "do": "nope", "to": "\x00", "layout": "sideways", "reentry": "\x00"},
        {"confirm": "yes", "template_id": "\x00", "filter": "[" * 5000},
    ]
    concrete = path.replace("{id}", message)
    for data in odd:
        status, text, _ = await browser.post(concrete, data)
        assert status < 500 and ("<html" in text or status == 303), (concrete, data.keys(), status)


async def test_a_console_page_refused_before_its_handler_is_a_page_and_the_api_stays_json(api: Api) -> None:
    browser = await signed_in(api)
    status, text, _ = await browser.post("/console/triggers", {"event": "e", "title": "t" * 100_000})
    assert status == 413 and "<html" in text and "at most 65536 bytes" in text
    status, text = await browser.page("/console/nothing-here")
    assert status == 404 and "<html" in text
    async with api.client.post("/console/api/preview", data=b"x" * 100_000,
                               headers={"X-CSRF-Token": browser.csrf}) as reply:
        assert reply.status == 413 and (await reply.json())["error"]["code"] == "body_too_large"
    reply = await api.request("POST", "/v1/messages", data=b"x" * 100_000)
    assert reply.status == 413 and reply.error_code == "body_too_large"
