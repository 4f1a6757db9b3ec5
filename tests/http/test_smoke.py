from tests.helpers import Api


async def test_send_poll_show_dismiss(api: Api) -> None:
    sent = await api.send("user-1", "Welcome")
    assert sent.status == 201, sent
    assert sent.body["state"] == "queued"

    polled = await api.poll("user-1", "phone")
    assert polled.status == 200, polled
    assert [m["id"] for m in polled.body["messages"]] == [sent.body["id"]]
    assert polled.body["tier"] == "active"
    assert polled.headers["X-Mailslot-Next-Poll"] == str(polled.body["next_poll_s"])

    shown = await api.show("user-1", "phone", sent.body["id"])
    assert shown.body == {"accepted": 1, "rejected": []}

    read = await api.message(sent.body["id"])
    assert read.body["state"] == "shown"
    assert read.body["device_id"] == "phone"
    assert [e["type"] for e in read.body["events"]] == ["queued", "offered", "shown"]
