"""The census in memory (decision 0028): who it lists, what takes a workspace out, when it is not kept."""

from __future__ import annotations

from storage import Census
from tests.unit.test_memory import quiet

ROWS = Census(
    people=((1, "ada", "ada@example.com", None), (1, None, None, "anon_visitor")),
    visit_workspaces=frozenset({3}),
    complete=True,
)


def test_a_census_lists_ids_emails_in_any_case_and_visitors_and_leaves_out_visit_workspaces() -> None:
    people, _ = quiet()
    assert people.install_census(ROWS, people.mark_and_rotations())

    assert not people.census_quiet(1, "ada")
    assert not people.census_quiet(1, "ADA@Example.com")
    assert not people.census_quiet(1, "\x00anon_visitor")
    assert people.census_quiet(1, "bob")
    assert people.census_quiet(1, "\x00anon_other")
    assert people.census_quiet(2, "ada")  # another workspace's ada has nothing
    assert not people.census_quiet(3, "bob")  # a visit broadcast is open there


def test_notices_after_the_mark_list_their_keys_and_a_workspace_notice_takes_it_out() -> None:
    people, _ = quiet()
    mark = people.mark_and_rotations()
    people.forget(1, ["bob"])  # heard while the census was being read
    assert people.install_census(ROWS, mark)
    assert not people.census_quiet(1, "bob")

    people.forget(1, ["Cy@Example.com"])
    assert not people.census_quiet(1, "cy@example.com")
    people.forget(2, [])  # an older gateway's notice names no one
    assert not people.census_quiet(2, "dan")
    people.forget_workspace(4)
    assert not people.census_quiet(4, "eve")
    assert people.census_quiet(1, "eve")


def test_a_census_is_not_kept_across_a_clear_incomplete_or_disabled_and_lapses_with_the_ttl() -> None:
    people, clock = quiet(ttl_s=30)
    mark = people.mark_and_rotations()
    people.clear()  # the listener reconnected while it was read
    assert not people.install_census(ROWS, mark)
    assert not people.install_census(Census(ROWS.people, ROWS.visit_workspaces, complete=False),
                                     people.mark_and_rotations())
    assert people.census_due()

    assert people.install_census(ROWS, people.mark_and_rotations())
    assert not people.census_due()
    clock.now += 30
    assert not people.census_quiet(1, "bob")
    assert people.census_due()

    people.census_failed()  # a failed read waits a ttl before the next
    assert not people.census_due()
    clock.now += 30
    assert people.census_due()

    people.enabled = False
    assert not people.census_due()
    assert not people.install_census(ROWS, people.mark_and_rotations())


def test_census_reads_that_keep_failing_wait_longer_each_time_until_one_is_kept() -> None:
    """A census too big or too slow to read (a million unsettled people) is not read again every ttl."""
    people, clock = quiet(ttl_s=30)
    waits = []
    for _ in range(8):
        people.census_failed()
        started = clock.now
        while not people.census_due():
            clock.now += 30
        waits.append(clock.now - started)
    assert waits == [30, 60, 120, 240, 480, 960, 960, 960]

    assert people.install_census(ROWS, people.mark_and_rotations())  # kept: the next failure waits one ttl again
    clock.now += 30
    people.census_failed()
    clock.now += 30
    assert people.census_due()
