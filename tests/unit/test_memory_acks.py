"""Offers a device acknowledges into an entry of memory (gateway/core/memory.py; decision 0045)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from gateway.core.memory import Memory
from tests.unit.test_memory import Ticking, quiet

LAST = datetime(2026, 11, 1, tzinfo=UTC)
M1, M2 = uuid.uuid4(), uuid.uuid4()


def noted(people: Memory, *ids: uuid.UUID, device: str = "phone") -> tuple[int, int]:
    """A claim that handed `device` these offers and saw nothing else pending."""
    mark = people.mark_and_rotations()
    people.note_offers(1, "ada", device, frozenset(ids or (M1,)), LAST, mark)
    return mark


def test_offers_all_shown_make_an_entry_for_that_device() -> None:
    people, _ = quiet()
    noted(people, M1, M2)
    assert people.acknowledge(1, "ada", "phone", {M1, M2}) == "acked"
    entry = people.get(1, "ada", "phone")
    assert entry is not None and entry.last_message_at == LAST
    assert people.get(1, "ada", "laptop") is None
    # The note went with it: the same reports again find nothing noted.
    assert people.acknowledge(1, "ada", "phone", {M1, M2}) is None


def test_an_offer_left_unacknowledged_makes_no_entry() -> None:
    people, _ = quiet()
    noted(people, M1, M2)
    assert people.acknowledge(1, "ada", "phone", {M1}) == "unacked"
    assert people.get(1, "ada") is None
    assert people.acknowledge(1, "ada", "phone", {M1, M2}) is None  # dropped, not kept for later


def test_another_devices_reports_do_not_acknowledge_the_phones_offers() -> None:
    people, _ = quiet()
    noted(people, M1)
    assert people.acknowledge(1, "ada", "laptop", {M1}) is None
    assert people.get(1, "ada") is None


def test_a_notice_since_the_claim_refuses_the_entry() -> None:
    people, _ = quiet()
    noted(people, M1)
    people.forget(1, ["ada"])  # a send to ada, committed during the claim or before the `shown`
    assert people.acknowledge(1, "ada", "phone", {M1}) == "refused"
    assert people.get(1, "ada") is None


def test_a_broadcast_or_a_clear_since_the_claim_refuses_the_entry() -> None:
    people, _ = quiet()
    noted(people, M1)
    people.forget_workspace(1)
    assert people.acknowledge(1, "ada", "phone", {M1}) == "refused"
    noted(people, M1)
    people.clear()  # the listener reconnected: the note is gone with everything else
    assert people.acknowledge(1, "ada", "phone", {M1}) is None


def test_a_notice_before_the_claims_mark_does_not_refuse() -> None:
    people, _ = quiet()
    people.forget(1, ["ada"])  # the send whose notice woke the held poll that claimed
    noted(people, M1)
    assert people.acknowledge(1, "ada", "phone", {M1}) == "acked"


def test_stamps_rotated_twice_since_the_claim_refuse_the_entry() -> None:
    """Stamps live two generations of max(ttl, 60 s): ada's, after the mark, is gone by the second."""
    people, clock = quiet(ttl_s=60)
    mark = people.mark_and_rotations()  # t=100: a slow claim starts
    clock.now += 20
    people.forget(1, ["ada"])  # t=120: a send to ada
    clock.now += 41
    people.forget(1, ["bob"])  # t=161: the first rotation (ada's stamp is now old)
    clock.now += 39
    people.note_offers(1, "ada", "phone", frozenset({M1}), LAST, mark)  # t=200: the claim answers
    clock.now += 22
    people.forget(1, ["carol"])  # t=222: the second rotation drops ada's stamp
    assert people.acknowledge(1, "ada", "phone", {M1}) == "refused"


def test_a_note_lapses_after_the_ttl() -> None:
    people, clock = quiet(ttl_s=30)
    noted(people, M1)
    clock.now += 31
    assert people.acknowledge(1, "ada", "phone", {M1}) == "refused"
    assert people.get(1, "ada") is None


def test_nothing_is_noted_while_disabled_or_with_a_zero_ttl() -> None:
    people, _ = quiet()
    people.enabled = False
    noted(people, M1)
    people.enabled = True
    assert people.acknowledge(1, "ada", "phone", {M1}) is None
    off = Memory(0, monotonic=Ticking())
    off.enabled = True
    off.note_offers(1, "ada", "phone", frozenset({M1}), LAST, off.mark_and_rotations())
    assert off.acknowledge(1, "ada", "phone", {M1}) is None


def test_notes_are_bounded_least_recently_noted_first() -> None:
    people, _ = quiet(max_entries=2)
    for device in ("a", "b", "c"):
        noted(people, M1, device=device)
    assert people.acknowledge(1, "ada", "a", {M1}) is None
    assert people.acknowledge(1, "ada", "c", {M1}) == "acked"
