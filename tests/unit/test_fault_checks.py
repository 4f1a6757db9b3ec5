"""The fault suite's checks can fail: each contract violation a record may show is named."""

from __future__ import annotations

from tests.faults.load import Offer, Record, check_invariants


def delivered(record: Record, key: str, message_id: str, *devices: str) -> None:
    record.acknowledged[key] = message_id
    record.shown_accepted[message_id].update(devices)


def test_a_clean_record_has_no_problem() -> None:
    record = Record()
    delivered(record, "k1", "m1", "ada:d0")
    record.offers["m1"] = [Offer("ada:d1", 0.0, 15), Offer("ada:d0", 16.0, 15)]  # after the first lease
    assert check_invariants(record) == []


def test_a_lost_send_and_a_double_show_are_named() -> None:
    record = Record()
    delivered(record, "k1", "m1")
    delivered(record, "k2", "m2", "ada:d0", "ada:d1")
    problems = check_invariants(record)
    assert any("k1" in p and "no device" in p for p in problems), problems
    assert any("k2" in p and "ada:d1" in p for p in problems), problems


def test_an_offer_inside_another_devices_lease_is_named() -> None:
    record = Record()
    delivered(record, "k1", "m1", "ada:d0")
    record.offers["m1"] = [Offer("ada:d1", 0.0, 15), Offer("ada:d0", 14.0, 15)]
    assert check_invariants(record) == ["m1 offered to ada:d0 1.00 s before ada:d1's lease ran out"]


def test_a_500_and_a_send_never_acknowledged_are_named() -> None:
    record = Record(unexpected=["/v1/poll 500 {}"], failed_sends=["k9"])
    problems = check_invariants(record)
    assert len(problems) == 2 and "500" in problems[0] and "k9" in problems[1], problems
