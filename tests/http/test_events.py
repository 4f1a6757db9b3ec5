"""Device reports: idempotent, named actions, and only on messages offered or shown to the device."""

from __future__ import annotations

import uuid

from tests.helpers import Api


async def offered(api: Api, user: str = "ada", device: str = "phone", **fields: object) -> str:
    sent = await api.send(user, **fields)
    polled = await api.poll(user, device)
    assert polled.message_ids == [sent.body["id"]], polled
    return str(sent.body["id"])


async def test_the_same_shown_report_twice_is_accepted_and_recorded_once(api: Api) -> None:
    message_id = await offered(api)
    first = await api.show("ada", "phone", message_id)
    second = await api.show("ada", "phone", message_id)
    assert first.body == second.body == {"accepted": 1, "rejected": []}

    both = await api.report("ada", "phone", {"message_id": message_id, "type": "shown"},
                            {"message_id": message_id, "type": "shown"})
    assert both.body == {"accepted": 2, "rejected": []}

    read = await api.message(message_id)
    assert [(e["type"], e["device_id"]) for e in read.body["events"]] == [
        ("queued", None), ("offered", "phone"), ("shown", "phone"),
    ]
    assert read.body["shown_at"] is not None


async def test_an_action_event_carries_its_name_and_is_recorded_once(api: Api) -> None:
    message_id = await offered(api, content={
        "title": "Tour?", "actions": [{"name": "tour", "label": "Take the tour", "url": "https://example.com/t"},
                                      {"name": "later", "label": "Later"}],
    })
    reported = await api.report(
        "ada", "phone",
        {"message_id": message_id, "type": "shown"},
        {"message_id": message_id, "type": "action", "action": "tour"},
        {"message_id": message_id, "type": "action", "action": "tour"},
        {"message_id": message_id, "type": "action", "action": "later"},
        {"message_id": message_id, "type": "dismissed"},
    )
    assert reported.body == {"accepted": 5, "rejected": []}

    read = await api.message(message_id)
    assert read.body["state"] == "dismissed"
    assert [(e["type"], e["action"], e["device_id"]) for e in read.body["events"]] == [
        ("queued", None, None),
        ("offered", None, "phone"),
        ("shown", None, "phone"),
        ("action", "tour", "phone"),
        ("action", "later", "phone"),
        ("dismissed", None, "phone"),
    ]


async def test_an_action_needs_the_message_shown_first(api: Api) -> None:
    message_id = await offered(api)
    early = await api.report("ada", "phone", {"message_id": message_id, "type": "action", "action": "tour"})
    assert early.body == {
        "accepted": 0,
        "rejected": [{"message_id": message_id, "type": "action", "code": "not_offered_to_device"}],
    }
    assert await api.event_types(message_id) == ["queued", "offered"]


async def test_an_action_event_without_a_name_is_invalid(api: Api) -> None:
    message_id = await offered(api)
    await api.show("ada", "phone", message_id)
    invalid = await api.report("ada", "phone", {"message_id": message_id, "type": "action"})
    assert (invalid.status, invalid.error_code) == (422, "invalid_fields")


async def test_an_offered_message_may_be_dismissed_without_being_shown(api: Api) -> None:
    message_id = await offered(api)
    assert (await api.dismiss("ada", "phone", message_id)).body == {"accepted": 1, "rejected": []}
    assert (await api.message(message_id)).body["state"] == "dismissed"
    assert (await api.poll("ada", "phone")).message_ids == []
    assert (await api.poll("ada", "laptop")).message_ids == []


async def test_a_device_may_report_only_on_messages_offered_to_it(api: Api) -> None:
    message_id = await offered(api, device="phone")
    queued = (await api.send("ada", "Not yet polled")).body["id"]

    for device, user, mid in (
        ("laptop", "ada", message_id),   # another device of the same person
        ("phone", "bob", message_id),    # the same device id, another person
        ("phone", "ada", queued),        # a message nobody was offered yet
    ):
        refused = await api.report(user, device, {"message_id": mid, "type": "shown"},
                                   {"message_id": mid, "type": "dismissed"})
        assert refused.status == 200, refused
        assert refused.body == {
            "accepted": 0,
            "rejected": [{"message_id": mid, "type": "shown", "code": "not_offered_to_device"},
                         {"message_id": mid, "type": "dismissed", "code": "not_offered_to_device"}],
        }, (device, user)

    read = await api.message(message_id)
    assert read.body["state"] == "offered"
    assert read.body["device_id"] == "phone"
    assert [e["type"] for e in read.body["events"]] == ["queued", "offered"]
    assert (await api.message(queued)).body["state"] == "queued"


async def test_a_report_on_an_unknown_message_is_rejected(api: Api) -> None:
    message_id = await offered(api)
    unknown = str(uuid.uuid4())
    mixed = await api.report("ada", "phone", {"message_id": unknown, "type": "shown"},
                             {"message_id": message_id, "type": "shown"})
    assert mixed.body == {
        "accepted": 1,
        "rejected": [{"message_id": unknown, "type": "shown", "code": "unknown_message"}],
    }
    assert (await api.message(message_id)).body["state"] == "shown"


async def test_a_report_about_a_message_shown_on_another_device_is_rejected(api: Api) -> None:
    message_id = await offered(api)
    await api.show("ada", "phone", message_id)
    for event in ({"message_id": message_id, "type": "dismissed"},
                  {"message_id": message_id, "type": "action", "action": "tour"}):
        refused = await api.report("ada", "laptop", event)
        assert refused.body["rejected"][0]["code"] == "not_offered_to_device"
    assert (await api.message(message_id)).body["state"] == "shown"
    assert await api.event_types(message_id) == ["queued", "offered", "shown"]
