"""The per-process memory of people with nothing pending (gateway/quiet.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.core.quiet import QuietPeople

LAST = datetime(2026, 11, 1, tzinfo=UTC)


class Ticking:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def quiet(ttl_s: float = 30) -> tuple[QuietPeople, Ticking]:
    clock = Ticking()
    people = QuietPeople(ttl_s, monotonic=clock)
    people.enabled = True
    return people, clock


def test_a_remembered_person_is_answered_until_the_ttl_runs_out() -> None:
    people, clock = quiet(ttl_s=30)
    assert people.remember(1, "ada", LAST, people.mark())
    entry = people.get(1, "ada")
    assert entry is not None and entry.last_message_at == LAST
    assert people.get(2, "ada") is None
    clock.now += 31
    assert people.get(1, "ada") is None


def test_nothing_is_remembered_or_answered_while_disabled() -> None:
    people, _ = quiet()
    people.enabled = False
    assert not people.remember(1, "ada", LAST, people.mark())
    people.enabled = True
    people.remember(1, "ada", LAST, people.mark())
    people.enabled = False
    assert people.get(1, "ada") is None


def test_a_notice_forgets_the_person_by_any_key() -> None:
    people, _ = quiet()
    people.remember(1, "ada", LAST, people.mark())
    people.remember(1, "Ada@Example.com", LAST, people.mark())
    people.remember(1, "bob", LAST, people.mark())
    people.forget(1, ["ada", "ada@example.com"])
    assert people.get(1, "ada") is None
    assert people.get(1, "Ada@Example.com") is None
    assert people.get(1, "bob") is not None


def test_a_claim_overtaken_by_a_notice_is_not_remembered() -> None:
    people, _ = quiet()
    mark = people.mark()  # the claim starts
    people.forget(1, ["ada"])  # a send's notice arrives while it runs
    assert not people.remember(1, "ada", LAST, mark)
    assert people.get(1, "ada") is None
    # Another person's notice does not block it.
    mark = people.mark()
    people.forget(1, ["bob"])
    assert people.remember(1, "ada", LAST, mark)


def test_an_email_spelled_differently_is_overtaken_too() -> None:
    people, _ = quiet()
    mark = people.mark()
    people.forget(1, ["ada@example.com"])
    assert not people.remember(1, "ADA@example.com", LAST, mark)


def test_a_broadcast_forgets_the_whole_workspace_and_overtakes_its_claims() -> None:
    people, _ = quiet()
    people.remember(1, "ada", LAST, people.mark())
    people.remember(2, "ada", LAST, people.mark())
    mark = people.mark()
    people.forget_workspace(1)
    assert people.get(1, "ada") is None
    assert people.get(2, "ada") is not None
    assert not people.remember(1, "bob", LAST, mark)


def test_clear_forgets_everything_and_overtakes_running_claims() -> None:
    people, _ = quiet()
    people.remember(1, "ada", LAST, people.mark())
    mark = people.mark()
    people.clear()
    assert len(people) == 0
    assert not people.remember(1, "bob", LAST, mark)
