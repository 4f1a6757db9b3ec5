"""The console: sessions, CSRF, and each form's good and bad input (pages, never JSON errors)."""

from __future__ import annotations

import re
from typing import Any

from gateway.core import console as console_core
from gateway.core.clock import FixedClock
from gateway.http.keys import POOL
from tests.helpers import Api


class Console:
    """A browser on the console: the test client keeps the cookies; `csrf` is the page's form token."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.client = api.client
        self.csrf = ""

    async def page(self, path: str, **kwargs: Any) -> tuple[int, str]:
        async with self.client.get(path, allow_redirects=False, **kwargs) as response:
            text = await response.text()
            found = re.search(r'name="csrf" value="([^"]+)"', text)
            if found:
                self.csrf = found.group(1)
            return response.status, text

    async def post(self, path: str, data: dict[str, str], *, csrf: bool = True) -> tuple[int, str, str]:
        body = {"csrf": self.csrf, **data} if csrf else data
        async with self.client.post(path, data=body, allow_redirects=False) as response:
            return response.status, await response.text(), response.headers.get("Location", "")

    async def sign_in(self, api_key: str | None = None) -> tuple[int, str, str]:
        await self.page("/console/sign-in")
        return await self.post("/console/sign-in", {"api_key": api_key or self.api.api_key, "next": "/console"})


async def signed_in(api: Api) -> Console:
    browser = Console(api)
    status, _, location = await browser.sign_in()
    assert (status, location) == (303, "/console")
    await browser.page("/console")
    return browser


async def test_every_console_page_redirects_to_sign_in_without_a_session(api: Api) -> None:
    browser = Console(api)
    status, _ = await browser.page("/console")
    assert status == 303
    status, text, _ = await browser.post("/console/settings/in-app", {"enabled": "false"}, csrf=False)
    assert status == 401 and "<html" in text and "sign in again" in text
    async with api.client.get("/console/api/setup") as response:
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "console_sign_in_required"


async def test_sign_in_with_the_api_key_opens_the_settings_page(api: Api) -> None:
    browser = await signed_in(api)
    status, text = await browser.page("/console")
    assert status == 200
    assert api.site_id in text and "Required" in text
    assert api.api_key not in text  # the key never reaches the page
    cookie = next(c for c in api.client.session.cookie_jar if c.key == "mailslot_console")
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/console"
    assert int(cookie["max-age"]) > 0


async def test_a_wrong_or_empty_api_key_is_refused_on_the_form(api: Api) -> None:
    browser = Console(api)
    status, text, _ = await browser.sign_in("msk_wrong")
    assert status == 401 and "this API key is not valid" in text
    status, text, _ = await browser.sign_in(" ")
    assert status == 401 and "enter your workspace" in text
    status, _ = await browser.page("/console")
    assert status == 303


async def test_sign_in_without_its_csrf_cookie_is_refused(api: Api) -> None:
    browser = Console(api)
    status, text, _ = await browser.post("/console/sign-in", {"api_key": api.api_key, "csrf": "forged"}, csrf=False)
    assert status == 403 and "sign-in form expired" in text


async def test_a_form_without_the_session_csrf_token_is_refused_and_changes_nothing(api: Api) -> None:
    browser = await signed_in(api)
    await api.send("ada")
    status, text, _ = await browser.post("/console/settings/in-app", {"enabled": "false", "confirm": "yes"},
                                         csrf=False)
    assert status == 403 and "reload the page" in text
    browser.csrf = "forged"
    status, _, _ = await browser.post("/console/settings/in-app", {"enabled": "false", "confirm": "yes"})
    assert status == 403
    assert (await api.request("GET", "/v1/workspace")).body["in_app_enabled"] is True


async def test_a_forged_cookie_is_refused(api: Api) -> None:
    api.client.session.cookie_jar.update_cookies({"mailslot_console": "forged"})
    async with api.client.get("/console", allow_redirects=False) as response:
        assert response.status == 303


async def test_an_expired_session_is_refused(api: Api, clock: FixedClock) -> None:
    browser = await signed_in(api)
    clock.advance(hours=13)
    status, _ = await browser.page("/console")
    assert status == 303


async def test_sign_out_ends_the_session(api: Api) -> None:
    browser = await signed_in(api)
    status, _, location = await browser.post("/console/sign-out", {})
    assert (status, location) == (303, "/console/sign-in")
    status, _ = await browser.page("/console")
    assert status == 303


async def test_a_one_time_link_signs_in_once(api: Api) -> None:
    token = await console_core.create_link(api.client.app[POOL], api.workspace.id)
    browser = Console(api)
    status, text = await browser.page("/console/link")
    assert status == 200 and token not in text
    status, _, location = await browser.post("/console/link", {"token": token})
    assert (status, location) == (303, "/console")
    again = Console(api)
    await again.page("/console/link")
    status, text, _ = await again.post("/console/link", {"token": token})
    assert status == 401 and "used already or has expired" in text


async def test_disable_says_how_many_it_cancels_and_needs_confirming(api: Api) -> None:
    browser = await signed_in(api)
    for user in ("ada", "bob"):
        await api.send(user)
    _, text = await browser.page("/console")
    assert 'id="pending-count">2<' in text
    status, text, _ = await browser.post("/console/settings/in-app", {"enabled": "false"})
    assert status == 422 and "Tick the confirmation" in text
    assert (await api.request("GET", "/v1/workspace")).body["in_app_enabled"] is True
    status, _, location = await browser.post("/console/settings/in-app", {"enabled": "false", "confirm": "yes"})
    assert status == 303 and "recalled=2" in location
    _, text = await browser.page(location)
    assert "2 queued messages were cancelled" in text
    await browser.post("/console/settings/in-app", {"enabled": "true"})
    assert (await api.request("GET", "/v1/workspace")).body["in_app_enabled"] is True


async def test_the_test_message_form_sends_and_refuses_bad_input_on_the_form(api: Api) -> None:
    browser = await signed_in(api)
    status, text, _ = await browser.post("/console/settings/test-message", {
        "to_kind": "id", "to": "ada", "layout": "banner_top", "title": "Hi there", "body": "Test",
    })
    assert status == 201 and 'id="test-result"' in text
    message_id = re.search(r'data-message-id="([^"]+)"', text)
    assert message_id
    async with api.client.get(f"/console/api/messages/{message_id.group(1)}") as response:
        body = await response.json()
        assert body["state"] == "queued" and body["content"]["title"] == "Hi there"
        assert body["content"]["layout"] == "banner_top"
    for bad in ({"to_kind": "email", "to": "not-an-email"}, {"to_kind": "id", "to": ""},
                {"to_kind": "id", "to": "ada", "layout": "sideways"},
                {"to_kind": "id", "to": "ada", "layout": "inline"}):
        status, text, _ = await browser.post("/console/settings/test-message", bad)
        assert status == 422 and 'class="error"' in text and "<html" in text, bad
    assert len((await api.request("GET", "/v1/people/ada/messages")).body["messages"]) == 1


async def test_delivery_settings_save_and_refuse_bad_values_on_the_form(api: Api) -> None:
    browser = await signed_in(api)
    good = {"identity_mode": "optional", "active_s": "5", "inactive_s": "50", "low_s": "100", "recent_days": "7"}
    status, _, _ = await browser.post("/console/settings/delivery", good)
    assert status == 303
    workspace = (await api.request("GET", "/v1/workspace")).body
    assert workspace["identity_mode"] == "optional" and workspace["intervals"]["active_s"] == 5
    for name, value in (("active_s", "0"), ("low_s", "abc"), ("identity_mode", "maybe"), ("recent_days", "-1")):
        status, text, _ = await browser.post("/console/settings/delivery", {**good, name: value, "active_s": (
            value if name == "active_s" else "9")})
        assert status == 422 and 'class="error"' in text, name
    assert (await api.request("GET", "/v1/workspace")).body["intervals"]["active_s"] == 5


async def test_a_session_sees_only_its_own_workspace(api: Api, other_api: Api) -> None:
    await signed_in(api)
    sent = await other_api.send("ada")
    async with api.client.get(f"/console/api/messages/{sent.body['id']}") as response:
        assert response.status == 404


async def test_compose_sends_to_one_person_and_refuses_bad_content_on_the_form(api: Api) -> None:
    browser = await signed_in(api)
    status, text = await browser.page("/console/compose")
    assert status == 200 and 'src="/sdk/v1/mailslot.js"' in text
    status, text, _ = await browser.post("/console/compose", {
        "do": "send", "to": "ada", "to_kind": "id", "layout": "modal", "title": "Hi {{ customer.id }}",
        "action_label_0": "Open", "action_url_0": "https://example.com/x",
    })
    assert status == 201 and 'id="compose-result"' in text, text
    messages = (await api.request("GET", "/v1/people/ada/messages")).body["messages"]
    assert messages[0]["content"]["title"] == "Hi ada"
    assert messages[0]["content"]["actions"] == [{"name": "action_1", "label": "Open", "url": "https://example.com/x"}]
    for bad in ({"do": "send", "to": "ada", "title": ""},  # neither title nor body
                {"do": "send", "to": "", "title": "x"},
                {"do": "send", "to": "ada", "title": "{% if %}"},
                {"do": "send", "to": "ada", "title": "x", "action_url_0": "javascript:alert(1)"},
                {"do": "send", "to": "ada", "title": "x", "layout": "inline"}):
        status, text, _ = await browser.post("/console/compose", bad)
        assert status == 422 and 'class="error"' in text and "<html" in text, (bad, text[-400:])
        if bad["title"]:
            assert f'value="{bad["title"]}"' in text.replace("&#34;", '"') or "{% if %}" in text  # typed text kept
    assert len((await api.request("GET", "/v1/people/ada/messages")).body["messages"]) == 1


async def test_compose_broadcasts_to_a_filter_and_counts_the_audience_first(api: Api) -> None:
    browser = await signed_in(api)
    for user, plan in (("ada", "pro"), ("bob", "free"), ("cy", "pro")):
        await api.request("PUT", f"/v1/people/{user}", json={"plan_name": plan})
    flt = '{"attribute": "plan_name", "op": "eq", "value": "pro"}'
    headers = {"X-CSRF-Token": browser.csrf}
    async with api.client.post("/console/api/audience", json={"audience": "filter", "value": flt},
                               headers=headers) as response:
        assert (await response.json()) == {"count": 2}
    async with api.client.post("/console/api/audience", json={"audience": "filter", "value": "{nope"},
                               headers=headers) as response:
        assert response.status == 422 and (await response.json())["error"]["code"] == "invalid_filter"
    async with api.client.post("/console/api/audience", json={"audience": "ids", "value": "a\nb\na"},
                               headers=headers) as response:
        assert (await response.json()) == {"count": 2}
    async with api.client.post("/console/api/audience", json={"audience": "all"}) as response:
        assert response.status == 403  # no CSRF token
    status, text, _ = await browser.post("/console/compose", {
        "do": "broadcast", "audience": "filter", "audience_value": flt, "title": "For pros",
    })
    assert status == 201 and "queued for 2 people" in text
    status, text, _ = await browser.post("/console/compose", {
        "do": "broadcast", "audience": "filter", "audience_value": "not json", "title": "x",
    })
    assert status == 422 and 'class="error"' in text


async def test_preview_renders_liquid_as_the_chosen_person(api: Api) -> None:
    browser = await signed_in(api)
    await api.request("PUT", "/v1/people/ada", json={"first_name": "Ada"})
    headers = {"X-CSRF-Token": browser.csrf}
    content = {"title": "Hi {{ customer.first_name | default: 'there' }}", "layout": "banner_top"}
    async with api.client.post("/console/api/preview", json={"content": content, "person": "ada"},
                               headers=headers) as response:
        assert (await response.json())["content"]["title"] == "Hi Ada"
    async with api.client.post("/console/api/preview", json={"content": content}, headers=headers) as response:
        assert (await response.json())["content"]["title"] == "Hi there"
    async with api.client.post("/console/api/preview", json={"content": content, "person": "nobody"},
                               headers=headers) as response:
        assert response.status == 404
    async with api.client.post("/console/api/preview", json={"content": {"title": "{% if %}"}},
                               headers=headers) as response:
        assert response.status == 422
    async with api.client.post("/console/api/preview", data=b"[", headers=headers) as response:
        assert response.status == 400


async def test_templates_save_load_and_refuse_a_taken_name(api: Api) -> None:
    browser = await signed_in(api)
    status, text, _ = await browser.post("/console/compose", {"do": "save", "template_name": "welcome",
                                                               "title": "Welcome {{ customer.id }}"})
    assert status == 201 and "saved" in text
    template_id = (await api.request("GET", "/v1/templates")).body["templates"][0]["id"]
    status, text = await browser.page(f"/console/compose?template={template_id}")
    assert status == 200 and "Welcome {{ customer.id }}" in text
    status, text, _ = await browser.post("/console/compose", {"do": "save", "template_name": "welcome", "title": "x"})
    assert status == 409 and 'class="error"' in text
    status, text, _ = await browser.post("/console/compose", {"do": "save", "template_name": "", "title": "x"})
    assert status == 422
    for bad in ("nope", "00000000-0000-0000-0000-000000000000"):
        status, text = await browser.page(f"/console/compose?template={bad}")
        assert status == 404 and "<html" in text


async def test_the_person_page_says_why_a_message_was_not_seen(api: Api, clock: FixedClock) -> None:
    browser = await signed_in(api)
    await api.request("PATCH", "/v1/workspace", json={"identity_mode": "off"})
    await api.request("PUT", "/v1/people/ada", json={})
    assert (await api.poll("ada", device_id="laptop")).status == 200
    clock.advance(minutes=10)
    await api.send("ada", "Spring sale")
    clock.advance(minutes=4)
    status, text = await browser.page("/console/people?q=ada")
    assert status == 200
    assert "“Spring sale” queued 4 min ago; no device has polled since" in text
    # The laptop last polled with nothing ever sent: it was told the low tier's 180 s, 14 min ago.
    assert "their devices poll every 180 s, so no device has the app open now" in text and "laptop" in text
    status, text = await browser.page("/console/people?q=nobody")
    assert status == 404 and "no person with this id or email" in text
    status, _ = await browser.page("/console/people?q=" + "x" * 5000)
    assert status == 404
