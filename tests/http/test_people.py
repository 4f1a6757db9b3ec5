"""People: identify links an id and an email into one queue; attributes merge; the person's queue."""

from __future__ import annotations

from gateway.core.clock import FixedClock
from tests.helpers import Api

EMAIL = "ada@example.com"


async def test_a_message_sent_to_an_email_before_identify_reaches_the_device_polling_by_id(api: Api) -> None:
    sent = await api.send({"email": EMAIL}, "Welcome")
    assert sent.body["to"] == {"id": None, "email": EMAIL}
    assert (await api.poll("user-42", "phone")).message_ids == []

    identified = await api.identify("user-42", email=EMAIL)
    assert identified.status == 200, identified
    assert identified.body == {"id": "user-42", "email": EMAIL, "attributes": {}}

    assert (await api.poll("user-42", "phone")).message_ids == [sent.body["id"]]
    read = await api.message(sent.body["id"])
    assert read.body["to"] == {"id": "user-42", "email": EMAIL}


async def test_a_message_sent_to_an_email_after_identify_reaches_the_device_polling_by_id(api: Api) -> None:
    await api.identify("user-42", email=EMAIL)
    sent = await api.send({"email": EMAIL})
    assert sent.body["to"] == {"id": "user-42", "email": EMAIL}

    assert (await api.poll("user-42", "phone")).message_ids == [sent.body["id"]]
    # One queue: the same person polling by email on another device does not get it too.
    assert (await api.poll(EMAIL, "laptop")).message_ids == []


async def test_a_message_sent_to_an_id_reaches_the_device_polling_by_email(api: Api) -> None:
    await api.identify("user-42", email=EMAIL)
    sent = await api.send("user-42")

    polled = await api.poll(EMAIL, "phone")
    assert polled.message_ids == [sent.body["id"]]
    assert (await api.show(EMAIL, "phone", sent.body["id"])).body == {"accepted": 1, "rejected": []}
    assert (await api.poll("user-42", "laptop")).message_ids == []
    assert (await api.message(sent.body["id"])).body["state"] == "shown"


async def test_emails_match_whatever_their_case(api: Api) -> None:
    await api.identify("user-42", email="Ada@Example.com")
    sent = await api.send({"email": "ADA@example.COM"})
    assert (await api.poll("ada@EXAMPLE.com", "phone")).message_ids == [sent.body["id"]]


async def test_identify_keeps_an_offer_made_to_a_device_that_polled_by_email(api: Api) -> None:
    sent = await api.send({"email": EMAIL})
    assert (await api.poll(EMAIL, "phone")).message_ids == [sent.body["id"]]

    await api.identify("user-42", email=EMAIL)
    assert (await api.poll("user-42", "phone")).message_ids == [sent.body["id"]]
    assert (await api.poll("user-42", "laptop")).message_ids == []
    assert await api.event_types(sent.body["id"]) == ["queued", "offered"]


async def test_an_email_of_another_person_is_refused(api: Api) -> None:
    await api.identify("user-42", email=EMAIL)
    refused = await api.identify("user-7", email=EMAIL.upper())
    assert (refused.status, refused.error_code) == (409, "email_in_use")

    sent = await api.send({"email": EMAIL})
    assert sent.body["to"]["id"] == "user-42"
    assert (await api.poll("user-7", "phone")).message_ids == []
    assert (await api.poll("user-42", "phone")).message_ids == [sent.body["id"]]


async def test_identify_can_move_a_person_to_a_new_email(api: Api) -> None:
    await api.identify("user-42", email=EMAIL)
    moved = await api.identify("user-42", email="ada@new.example.com")
    assert moved.body["email"] == "ada@new.example.com"

    # The old email is free again, and now names someone else.
    assert (await api.identify("user-7", email=EMAIL)).status == 200
    sent = await api.send({"email": EMAIL})
    assert (await api.poll("user-7", "phone")).message_ids == [sent.body["id"]]
    assert (await api.poll("user-42", "phone")).message_ids == []


async def test_attributes_merge_and_null_removes_one(api: Api) -> None:
    first = await api.identify("user-42", email=EMAIL, first_name="Ada", plan_name="free", created_at=1764331200)
    assert first.body == {
        "id": "user-42", "email": EMAIL,
        "attributes": {"first_name": "Ada", "plan_name": "free", "created_at": 1764331200},
    }

    second = await api.identify("user-42", plan_name="pro", first_name=None, company={"name": "Analytical"})
    assert second.status == 200, second
    assert second.body == {
        "id": "user-42", "email": EMAIL,
        "attributes": {"plan_name": "pro", "created_at": 1764331200, "company": {"name": "Analytical"}},
    }

    listed = await api.person_messages("user-42")
    assert listed.body["person"] == second.body


async def test_a_null_email_unlinks_it(api: Api) -> None:
    await api.identify("user-42", email=EMAIL, first_name="Ada")
    unlinked = await api.identify("user-42", email=None)
    assert unlinked.body == {"id": "user-42", "email": None, "attributes": {"first_name": "Ada"}}

    sent = await api.send({"email": EMAIL})
    assert sent.body["to"] == {"id": None, "email": EMAIL}
    assert (await api.poll("user-42", "phone")).message_ids == []


async def test_a_persons_messages_list_the_queue_first(api: Api, clock: FixedClock) -> None:
    await api.identify("user-42", email=EMAIL)
    shown = await api.send("user-42", "Shown")
    await api.poll("user-42", "phone")
    await api.show("user-42", "phone", shown.body["id"])
    clock.advance(seconds=1)
    recalled = await api.send("user-42", "Recalled")
    await api.recall(recalled.body["id"])
    clock.advance(seconds=1)
    offered = await api.send({"email": EMAIL}, "Offered")
    await api.poll("user-42", "phone")
    clock.advance(seconds=1)
    queued = await api.send("user-42", "Queued")
    await api.send("someone-else", "Not theirs")

    listed = await api.person_messages("user-42")
    assert listed.status == 200, listed
    assert listed.body["person"] == {"id": "user-42", "email": EMAIL, "attributes": {}}
    assert [(m["id"], m["state"]) for m in listed.body["messages"]] == [
        (queued.body["id"], "queued"),
        (offered.body["id"], "offered"),
        (recalled.body["id"], "recalled"),
        (shown.body["id"], "shown"),
    ]
    assert listed.body["messages"][1]["device_id"] == "phone"

    by_email = await api.person_messages(EMAIL.upper(), by="email")
    assert by_email.body == listed.body


async def test_an_unknown_person_has_no_messages_to_list(api: Api) -> None:
    await api.identify("user-42", email=EMAIL)
    for person, by in (("nobody", None), (EMAIL, None), ("user-42", "email"), ("nobody@example.com", "email")):
        missing = await api.person_messages(person, by=by)
        assert (missing.status, missing.error_code) == (404, "unknown_person"), (person, by)
