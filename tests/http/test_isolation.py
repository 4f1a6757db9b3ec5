"""Isolation between workspaces, and the identity proof a workspace can demand of devices."""

from __future__ import annotations

import pytest

from gateway.core.clock import FixedClock
from tests.helpers import Api

# Workspaces: `api` is A (acme), `other_api` is B (globex), both on the same gateway.


async def test_a_key_cannot_read_or_recall_another_workspaces_message(api: Api, other_api: Api) -> None:
    theirs = await other_api.send("ada")
    message_id = theirs.body["id"]

    read = await api.message(message_id)
    assert (read.status, read.error_code) == (404, "unknown_message")
    recall = await api.recall(message_id)
    assert (recall.status, recall.error_code) == (404, "unknown_message")
    listed = await api.person_messages("ada")
    assert (listed.status, listed.error_code) == (404, "unknown_person")

    assert (await other_api.message(message_id)).body["state"] == "queued"
    assert (await other_api.poll("ada", "phone")).message_ids == [message_id]


async def test_a_site_id_polls_only_its_own_workspaces_people(api: Api, other_api: Api, clock: FixedClock) -> None:
    ours = await api.send("ada")
    assert (await other_api.poll("ada", "phone")).message_ids == []
    clock.advance(seconds=301)
    assert (await other_api.poll("ada", "laptop")).message_ids == []

    assert await api.event_types(ours.body["id"]) == ["queued"]
    assert (await api.poll("ada", "phone")).message_ids == [ours.body["id"]]


async def test_a_device_of_another_workspace_cannot_report_on_a_message(api: Api, other_api: Api) -> None:
    ours = await api.send("ada")
    message_id = ours.body["id"]
    await api.poll("ada", "phone")

    # Same user, same device id, but B's site id: B knows no such message.
    for event in ({"message_id": message_id, "type": "shown"}, {"message_id": message_id, "type": "dismissed"}):
        refused = await other_api.report("ada", "phone", event)
        assert refused.body == {
            "accepted": 0, "rejected": [{**event, "code": "unknown_message"}],
        }
    read = await api.message(message_id)
    assert read.body["state"] == "offered"
    assert [e["type"] for e in read.body["events"]] == ["queued", "offered"]


async def test_people_and_idempotency_keys_are_per_workspace(api: Api, other_api: Api) -> None:
    assert (await api.identify("user-42", email="ada@example.com")).status == 200
    assert (await other_api.identify("user-7", email="ada@example.com")).status == 200

    key = {"Idempotency-Key": "shared-key"}
    ours = await api.send({"email": "ada@example.com"}, headers=key)
    theirs = await other_api.send({"email": "ada@example.com"}, "Different", headers=key)
    assert (ours.status, theirs.status) == (201, 201)
    assert ours.body["id"] != theirs.body["id"]
    assert ours.body["to"]["id"] == "user-42"
    assert theirs.body["to"]["id"] == "user-7"

    assert (await api.poll("user-42", "phone")).message_ids == [ours.body["id"]]
    assert (await other_api.poll("user-7", "phone")).message_ids == [theirs.body["id"]]


async def test_disabling_one_workspace_leaves_the_other_alone(api: Api, other_api: Api) -> None:
    theirs = await other_api.send("ada")
    await api.send("ada")
    disabled = await api.patch_workspace(in_app_enabled=False, identity_mode="required")
    assert disabled.body["recalled"] == 1

    assert (await other_api.message(theirs.body["id"])).body["state"] == "queued"
    assert (await other_api.send("bob")).status == 201
    assert (await other_api.poll("ada", "phone")).message_ids == [theirs.body["id"]]
    assert (await other_api.request("GET", "/v1/workspace")).body["identity_mode"] == "off"


async def test_a_key_answers_for_its_own_workspace_only(api: Api, other_api: Api) -> None:
    ours = await api.request("GET", "/v1/workspace")
    theirs = await other_api.request("GET", "/v1/workspace")
    assert (ours.body["name"], ours.body["site_id"]) == ("acme", api.site_id)
    assert (theirs.body["name"], theirs.body["site_id"]) == ("globex", other_api.site_id)


# Identity proof


async def test_required_mode_refuses_a_missing_or_wrong_proof(api: Api, other_api: Api) -> None:
    sent = await api.send("ada")
    await api.patch_workspace(identity_mode="required")

    for proof, code in (
        ({}, "identity_proof_required"),
        ({"user_hash": ""}, "identity_proof_required"),
        ({"user_hash": "0" * 64}, "identity_proof_failed"),
        ({"user_hash": api.hash_for("bob")}, "identity_proof_failed"),
        ({"user_hash": other_api.hash_for("ada")}, "identity_proof_failed"),
    ):
        refused = await api.poll("ada", "phone", **proof)
        assert (refused.status, refused.error_code) == (403, code), proof
        refused = await api.report("ada", "phone", {"message_id": sent.body["id"], "type": "shown"}, **proof)
        assert (refused.status, refused.error_code) == (403, code), proof

    # Nothing was claimed by the refused polls.
    assert await api.event_types(sent.body["id"]) == ["queued"]

    proof = {"user_hash": api.hash_for("ada")}
    assert (await api.poll("ada", "phone", **proof)).message_ids == [sent.body["id"]]
    shown = await api.report("ada", "phone", {"message_id": sent.body["id"], "type": "shown"}, **proof)
    assert shown.body == {"accepted": 1, "rejected": []}


async def test_required_mode_proves_the_identifier_the_device_polls_as(api: Api) -> None:
    await api.identify("user-42", email="ada@example.com")
    sent = await api.send("user-42")
    await api.patch_workspace(identity_mode="required")

    by_email = await api.poll("ada@example.com", "phone", user_hash=api.hash_for("ada@example.com"))
    assert by_email.message_ids == [sent.body["id"]]
    wrong = await api.poll("ada@example.com", "laptop", user_hash=api.hash_for("user-42"))
    assert (wrong.status, wrong.error_code) == (403, "identity_proof_failed")


async def test_optional_mode_accepts_no_proof_but_rejects_a_wrong_one(api: Api) -> None:
    await api.patch_workspace(identity_mode="optional")
    assert (await api.poll("ada", "phone")).status == 200
    assert (await api.poll("ada", "phone", user_hash=api.hash_for("ada"))).status == 200
    assert (await api.poll("ada", "phone", user_hash=api.hash_for("ada").upper())).status == 200
    wrong = await api.poll("ada", "phone", user_hash=api.hash_for("bob"))
    assert (wrong.status, wrong.error_code) == (403, "identity_proof_failed")


@pytest.mark.parametrize("proof", [None, "0" * 64, "not hex at all"])
async def test_off_mode_ignores_the_proof(api: Api, proof: str | None) -> None:
    sent = await api.send("ada")
    fields = {} if proof is None else {"user_hash": proof}
    polled = await api.poll("ada", "phone", **fields)
    assert polled.message_ids == [sent.body["id"]]
    assert (await api.report("ada", "phone", {"message_id": sent.body["id"], "type": "shown"},
                             **fields)).body["accepted"] == 1
