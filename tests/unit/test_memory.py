"""The per-process memory of people with nothing pending (gateway/core/memory.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.core.memory import MAX_DEVICES, Memory

LAST = datetime(2026, 11, 1, tzinfo=UTC)


class Ticking:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def quiet(ttl_s: float = 30, max_entries: int = 100) -> tuple[Memory, Ticking]:
    clock = Ticking()
    people = Memory(ttl_s, max_entries=max_entries, monotonic=clock)
    people.enabled = True
    return people, clock


def test_a_remembered_person_is_answered_until_the_ttl_runs_out() -> None:
    people, clock = quiet(ttl_s=30)
    assert people.remember(1, "ada", "web", LAST, people.mark())
    entry = people.get(1, "ada")
    assert entry is not None and entry.last_message_at == LAST
    assert people.get(2, "ada") is None
    clock.now += 31
    assert people.get(1, "ada") is None


def test_nothing_is_remembered_or_answered_while_disabled() -> None:
    people, _ = quiet()
    people.enabled = False
    assert not people.remember(1, "ada", "web", LAST, people.mark())
    people.enabled = True
    people.remember(1, "ada", "web", LAST, people.mark())
    people.enabled = False
    assert people.get(1, "ada") is None


def test_a_notice_forgets_the_person_by_any_key() -> None:
    people, _ = quiet()
    people.remember(1, "ada", "web", LAST, people.mark())
    people.remember(1, "Ada@Example.com", "web", LAST, people.mark())
    people.remember(1, "bob", "web", LAST, people.mark())
    people.forget(1, ["ada", "ada@example.com"])
    assert people.get(1, "ada") is None
    assert people.get(1, "Ada@Example.com") is None
    assert people.get(1, "bob") is not None


def test_a_claim_overtaken_by_a_notice_is_not_remembered() -> None:
    people, _ = quiet()
    mark = people.mark()  # the claim starts
    people.forget(1, ["ada"])  # a send's notice arrives while it runs
    assert not people.remember(1, "ada", "web", LAST, mark)
    assert people.get(1, "ada") is None
    # Another person's notice does not block it.
    mark = people.mark()
    people.forget(1, ["bob"])
    assert people.remember(1, "ada", "web", LAST, mark)


def test_an_email_spelled_differently_is_overtaken_too() -> None:
    people, _ = quiet()
    mark = people.mark()
    people.forget(1, ["ada@example.com"])
    assert not people.remember(1, "ADA@example.com", "web", LAST, mark)


def test_a_broadcast_forgets_the_whole_workspace_and_overtakes_its_claims() -> None:
    people, _ = quiet()
    people.remember(1, "ada", "web", LAST, people.mark())
    people.remember(2, "ada", "web", LAST, people.mark())
    mark = people.mark()
    people.forget_workspace(1)
    assert people.get(1, "ada") is None
    assert people.get(2, "ada") is not None
    assert not people.remember(1, "bob", "web", LAST, mark)


def test_clear_forgets_everything_and_overtakes_running_claims() -> None:
    people, _ = quiet()
    people.remember(1, "ada", "web", LAST, people.mark())
    mark = people.mark()
    people.clear()
    assert len(people) == 0
    assert not people.remember(1, "bob", "web", LAST, mark)


def test_an_entry_answers_only_devices_that_claimed_while_it_lived() -> None:
    # Each device still reaches the database once per entry, so its "last poll" stays recorded.
    people, _ = quiet()
    assert people.remember(1, "ada", "laptop", LAST, people.mark())
    assert people.get(1, "ada", "laptop") is not None
    assert people.get(1, "ada", "phone") is None
    assert people.remember(1, "ada", "phone", LAST, people.mark())
    assert people.get(1, "ada", "phone") is not None
    assert people.get(1, "ada", "laptop") is not None


def test_an_entry_remembers_a_bounded_number_of_devices() -> None:
    people, _ = quiet()
    for n in range(MAX_DEVICES + 3):
        people.remember(1, "ada", f"d{n}", LAST, people.mark())
    assert people.get(1, "ada", f"d{MAX_DEVICES + 2}") is not None
    entry = people.get(1, "ada")
    assert entry is not None and entry.device_count <= MAX_DEVICES


def test_the_least_recently_used_entry_goes_first_when_full() -> None:
    people, _ = quiet(max_entries=3)
    for user in ("a", "b", "c"):
        people.remember(1, user, "web", LAST, people.mark())
    assert people.get(1, "a") is not None  # a is now the most recently used
    people.remember(1, "d", "web", LAST, people.mark())
    assert len(people) == 3
    assert people.get(1, "b") is None
    assert [people.get(1, u) is not None for u in ("a", "c", "d")] == [True, True, True]


def test_an_evicted_email_spelling_leaves_nothing_behind() -> None:
    people, _ = quiet(max_entries=1)
    people.remember(1, "Ada@Example.com", "web", LAST, people.mark())
    people.remember(1, "bob", "web", LAST, people.mark())
    assert people.get(1, "Ada@Example.com") is None
    assert people._spellings == {}


def test_a_broadcast_lapses_entries_written_before_it_but_not_after() -> None:
    people, _ = quiet()
    people.remember(1, "ada", "web", LAST, people.mark())
    people.forget_workspace(1)
    assert people.get(1, "ada") is None
    assert people.remember(1, "ada", "web", LAST, people.mark())
    assert people.get(1, "ada") is not None


def test_nothing_is_remembered_with_a_zero_ttl() -> None:
    people, _ = quiet(ttl_s=0)
    assert not people.remember(1, "ada", "web", LAST, people.mark())
