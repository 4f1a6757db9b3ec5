"""`GET /`: a browser lands on a page with the way in; an API client gets the same links as JSON."""

from __future__ import annotations

from tests.helpers import Api, assert_message_style

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


async def test_a_browser_lands_on_a_page_that_links_the_way_in(api: Api) -> None:
    reply = await api.request("GET", "/", headers=BROWSER, auth=False)
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/html")
    page = reply.body
    for link in ('href="/demo"', 'href="/healthz"', 'href="/metrics"'):
        assert link in page
    assert "demo-workspace.json" in page and "mailslot workspace create" in page
    assert "docs/api.md" in page
    host = api.client.server.host
    assert f"http://{host}:{api.client.server.port}/v1/messages" in page


async def test_an_api_client_gets_the_links_as_json(api: Api) -> None:
    reply = await api.request("GET", "/", auth=False)
    assert reply.status == 200
    assert reply.body["name"] == "mailslot"
    assert set(reply.body["links"]) == {"demo", "healthz", "readyz", "metrics"}
    assert reply.body["links"]["healthz"].endswith("/healthz")


async def test_a_hostile_host_header_is_escaped_in_the_page(api: Api) -> None:
    reply = await api.request("GET", "/", headers={**BROWSER, "Host": 'x"><script>alert(1)</script>'}, auth=False)
    assert reply.status == 200
    assert "<script>alert(1)</script>" not in reply.body


async def test_head_answers_without_a_body(api: Api) -> None:
    reply = await api.request("HEAD", "/", headers=BROWSER, auth=False)
    assert reply.status == 200
    assert not reply.body


async def test_an_unknown_site_says_where_the_site_id_comes_from(api: Api) -> None:
    reply = await api.request(
        "POST", "/v1/poll", json={"site_id": "nope", "user": "ada", "device_id": "d"}, auth=False
    )
    assert reply.error_code == "unknown_site"
    message = reply.body["error"]["message"]
    assert "mailslot workspace create" in message and "demo-workspace.json" in message
    assert_message_style(message)


async def test_both_unauthorized_messages_say_how_to_fix_it_in_one_style(api: Api) -> None:
    missing = await api.request("GET", "/v1/workspace", auth=False)
    wrong = await api.request("GET", "/v1/workspace", headers={"Authorization": "Bearer nope"}, auth=False)
    for reply in (missing, wrong):
        assert reply.error_code == "unauthorized"
        assert_message_style(reply.body["error"]["message"])
    assert "Authorization: Bearer" in missing.body["error"]["message"]
    assert "demo-workspace.json" in wrong.body["error"]["message"]
