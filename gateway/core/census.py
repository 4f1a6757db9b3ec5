"""The census (decision 0028) as a poll looks it up: unsettled people by key, per workspace.

storage/census.py reads who has anything a claim could return or is not in the `low` tier; this
module turns that read into the keys a poll's user string is matched against, and takes the keys
of every notice heard after its mark. A person it does not list is quiet and `low`. When a census
may be trusted (read after the listener connected, no clear or second rotation since its mark,
not lapsed, its workspace not stamped since) is `Memory`'s rule, in gateway/core/memory.py.
"""

from __future__ import annotations

from storage import Census as CensusRows

__all__ = ["Census"]


class Census:
    """Who a poll must ask the database about, per workspace, as of one read taken after `mark`."""

    __slots__ = ("invalid", "mark", "unsettled", "until")

    def __init__(self, mark: int, until: float) -> None:
        self.mark = mark
        self.until = until
        # Per workspace: "i:" + external id, "e:" + lower-cased email, "a:" + visitor id.
        self.unsettled: dict[int, set[str]] = {}
        # Workspaces it cannot answer for: a visit broadcast open, or a notice that named no one.
        self.invalid: set[int] = set()

    @classmethod
    def from_rows(cls, rows: CensusRows, mark: int, until: float) -> Census:
        """The read's people as keys; the caller adds the notices heard since `mark`."""
        census = cls(mark, until)
        for workspace_id, external_id, email, anonymous_id in rows.people:
            keys = census.unsettled.setdefault(workspace_id, set())
            if external_id is not None:
                keys.add("i:" + external_id)
            if email is not None:
                keys.add("e:" + email.lower())
            if anonymous_id is not None:
                keys.add("a:" + anonymous_id)
        census.invalid.update(rows.visit_workspaces)
        return census

    def add_notified(self, workspace_id: int, key: str) -> None:
        """A notice's key may be any of a person's identifiers: count it as each."""
        self.unsettled.setdefault(workspace_id, set()).update(("i:" + key, "e:" + key.lower(), "a:" + key))

    def lists(self, workspace_id: int, key: str) -> bool:
        """Whether the person a poll names by `key` (a visitor's starts with NUL) may have something."""
        unsettled = self.unsettled.get(workspace_id)
        if not unsettled:
            return False
        if key.startswith("\x00"):  # a visitor (see poll.Poll.key)
            return "a:" + key[1:] in unsettled
        return "i:" + key in unsettled or "e:" + key.lower() in unsettled
