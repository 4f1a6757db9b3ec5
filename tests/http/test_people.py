"""People: identify links an id and an email into one queue; attributes merge; the person's queue."""

from __future__ import annotations

import asyncpg

from gateway.core.clock import FixedClock
from tests.helpers import Api

EMAIL = "ada@example.com"


async def test_a_message_sent_to_an_email_before_identify_reaches_the_device_polling_by_id(api: Api) -> None:
    sent = await api.send({"email": EMAIL}, "Welcome")
    assert sent.body["to"] == {"id": None, "email": EMAIL}
    assert (await api.poll("user-42", "phone")).message_ids == []

    identified = await api.identify("user-42", email=EMAIL)
    assert identified.status == 200, identified
    assert identified.body == {"id": "user-42", "email": EMAIL, "attributes": {}, "device_attributes": {}}

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
        "device_attributes": {},
    }

    second = await api.identify("user-42", plan_name="pro", first_name=None, company={"name": "Analytical"})
    assert second.status == 200, second
    assert second.body == {
        "id": "user-42", "email": EMAIL,
        "attributes": {"plan_name": "pro", "created_at": 1764331200, "company": {"name": "Analytical"}},
        "device_attributes": {},
    }

    listed = await api.person_messages("user-42")
    assert listed.body["person"] == second.body


async def test_a_null_email_unlinks_it(api: Api) -> None:
    await api.identify("user-42", email=EMAIL, first_name="Ada")
    unlinked = await api.identify("user-42", email=None)
    assert unlinked.body == {
        "id": "user-42", "email": None, "attributes": {"first_name": "Ada"}, "device_attributes": {},
    }

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
    assert listed.body["person"] == {"id": "user-42", "email": EMAIL, "attributes": {}, "device_attributes": {}}
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


# Who may write what: the backend owns `id`, `email` and its attributes; a device adds its own.

CAROL = "carol@b.com"


async def test_a_device_cannot_link_an_email_to_read_someone_elses_messages(api: Api) -> None:
    # Finding: a signed-in person identified with carol's email and received her messages.
    linked = await api.device_identify("mallory", {"email": CAROL, "first_name": "M"})
    assert (linked.status, linked.error_code) == (422, "invalid_fields"), linked
    assert "$.attributes.email" in linked.body["error"]["message"]

    sent = await api.send({"email": CAROL})
    assert (await api.poll("mallory", "phone", user_hash=api.hash_for("mallory"))).message_ids == []
    # Nothing of the refused request was kept, and the backend can still link carol's email.
    assert (await api.person_messages("mallory")).status == 404
    claimed = await api.identify("carol", email=CAROL)
    assert claimed.status == 200, claimed
    assert (await api.poll("carol", "phone", user_hash=api.hash_for("carol"))).message_ids == [sent.body["id"]]


async def test_a_device_cannot_unlink_or_change_an_email_or_an_id(api: Api) -> None:
    await api.identify("user-42", email=EMAIL)
    for attributes in ({"email": None}, {"email": "other@example.com"}, {"email": EMAIL}, {"id": "user-7"},
                       {"id": None}):
        refused = await api.device_identify("user-42", attributes)
        assert (refused.status, refused.error_code) == (422, "invalid_fields"), (attributes, refused)
    person = (await api.person_messages("user-42")).body["person"]
    assert person == {"id": "user-42", "email": EMAIL, "attributes": {}, "device_attributes": {}}


async def test_a_device_never_overwrites_or_removes_what_the_backend_set(api: Api) -> None:
    # Finding: a device's `plan_name: enterprise` replaced the backend's `free`.
    await api.identify("user-42", plan_name="free", first_name="Ada")
    written = await api.device_identify("user-42", {"plan_name": "enterprise", "first_name": None, "theme": "dark"})
    assert written.status == 200, written

    person = (await api.person_messages("user-42")).body["person"]
    assert person["attributes"] == {"plan_name": "free", "first_name": "Ada"}
    assert person["device_attributes"] == {"plan_name": "enterprise", "theme": "dark"}

    # A null from the device removes only the device's own value.
    await api.device_identify("user-42", {"theme": None})
    person = (await api.person_messages("user-42")).body["person"]
    assert person["device_attributes"] == {"plan_name": "enterprise"}


async def test_the_backend_and_a_device_each_keep_their_own_side(api: Api) -> None:
    await api.device_identify("user-42", {"theme": "dark"})
    identified = await api.identify("user-42", theme="light")
    assert identified.body["attributes"] == {"theme": "light"}
    assert identified.body["device_attributes"] == {"theme": "dark"}


async def test_an_email_shaped_user_reaches_the_person_with_that_email(api: Api, pool: asyncpg.Pool) -> None:
    # Finding: identifying as `dora@a.com` created a person whose id was that email, hidden from
    # every send to {"email": "dora@a.com"}.
    dora = "dora@a.com"
    await api.identify("dora-1", email=dora)
    written = await api.device_identify("Dora@A.com", {"theme": "dark"})
    assert written.status == 200, written
    assert written.body == {"id": "dora-1", "email": dora}
    assert await pool.fetchval("SELECT count(*) FROM people WHERE external_id ILIKE 'dora@a.com'") == 0
    assert (await api.person_messages("dora-1")).body["person"]["device_attributes"] == {"theme": "dark"}

    sent = await api.send({"email": dora})
    assert (await api.poll("Dora@A.com", "phone", user_hash=api.hash_for("Dora@A.com"))).message_ids == [
        sent.body["id"]
    ]


async def test_an_email_shaped_user_nobody_has_yet_becomes_a_person_known_by_that_email(
    api: Api, pool: asyncpg.Pool
) -> None:
    eve = "eve@a.com"
    written = await api.device_identify(eve, {"theme": "dark"})
    assert written.body == {"id": None, "email": eve}
    assert await pool.fetchval("SELECT count(*) FROM people WHERE external_id = $1", eve) == 0

    # A send to the email reaches the same person, and so does the backend's later link.
    sent = await api.send({"email": eve})
    assert sent.body["to"] == {"id": None, "email": eve}
    linked = await api.identify("eve-1", email=eve)
    assert linked.body["device_attributes"] == {"theme": "dark"}
    assert (await api.poll("eve-1", "phone", user_hash=api.hash_for("eve-1"))).message_ids == [sent.body["id"]]


async def test_an_id_match_wins_over_an_email_match(api: Api) -> None:
    # A person whose id happens to look like an email keeps it: the backend chose that id.
    await api.identify("zed@a.com", first_name="Zed")
    await api.identify("other", email="zed@a.com")
    written = await api.device_identify("zed@a.com", {"theme": "dark"})
    assert written.body == {"id": "zed@a.com", "email": None}


async def test_attribute_totals_are_capped_per_person_not_per_request(api: Api) -> None:
    # Finding: 40 requests of 100 attributes gave one person 4,000.
    for batch in range(10):
        reply = await api.device_identify("user-42", {f"a{batch}_{i}": i for i in range(10)})
        assert reply.status == 200, reply
    over = await api.device_identify("user-42", {"one_more": 1})
    assert (over.status, over.error_code) == (422, "attributes_limit"), over
    assert "100" in over.body["error"]["message"]

    # Changing or removing what is there is still fine, and removing makes room.
    assert (await api.device_identify("user-42", {"a0_0": "changed"})).status == 200
    assert (await api.device_identify("user-42", {"a0_0": None, "one_more": 1})).status == 200
    person = (await api.person_messages("user-42")).body["person"]
    assert len(person["device_attributes"]) == 100
    assert person["attributes"] == {}

    # The backend's side has its own cap, as large.
    for batch in range(10):
        assert (await api.identify("user-42", **{f"s{batch}_{i}": i for i in range(10)})).status == 200
    over = await api.identify("user-42", one_more=1)
    assert (over.status, over.error_code) == (422, "attributes_limit"), over
    assert len((await api.person_messages("user-42")).body["person"]["attributes"]) == 100


async def test_attribute_bytes_are_capped_per_person(api: Api) -> None:
    big = "x" * 4000
    for i in range(4):
        assert (await api.device_identify("user-42", {f"big{i}": big})).status == 200
    over = await api.device_identify("user-42", {"big4": big})
    assert (over.status, over.error_code) == (422, "attributes_limit"), over
    for i in range(4):
        assert (await api.identify("user-42", **{f"big{i}": big})).status == 200
    over = await api.identify("user-42", big4=big)
    assert (over.status, over.error_code) == (422, "attributes_limit"), over
    person = (await api.person_messages("user-42")).body["person"]
    assert sorted(person["attributes"]) == sorted(person["device_attributes"]) == [f"big{i}" for i in range(4)]
