"""People known to have nothing pending, so that their empty polls skip the database.

Why: an empty poll is by far the most common request, and a claim statement per empty poll
caps a 2-core host at a few thousand polls per second. Every change that can make a message
deliverable NOTIFYs every process (sends, broadcasts, triggers, identify merges), and the
listener drops the matching entries here before it wakes held polls.

Rules that keep it safe:
- An entry is written only from a claim that saw no pending message (queued or offered, for
  any device) and no persistent message on display, so no lease can run out under it.
- A claim that raced a notification for the same person does not write its result (the
  invalidation counter moved while it ran).
- Entries are trusted only while the listener is connected; a reconnect clears everything.
- Entries expire after `ttl_s` anyway, so nothing stale outlives that bound.
The remaining window is the notification's own delay (sub-millisecond on one host): a
short poll that lands in it answers empty and gets the message on its next poll; a held poll
is woken by the notification itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

__all__ = ["Quiet", "QuietPeople"]

_MAX_ENTRIES = 200_000


@dataclass(frozen=True, slots=True)
class Quiet:
    """What a poll needs to answer without the database: the tier's one fact."""

    last_message_at: datetime | None
    until: float


class QuietPeople:
    def __init__(self, ttl_s: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._monotonic = monotonic
        self._entries: dict[tuple[int, str], Quiet] = {}
        # Lower-cased email → the spellings devices poll with, so one notice drops them all.
        self._spellings: dict[tuple[int, str], set[str]] = {}
        # Invalidation stamps, in two generations rotated every ttl_s, so they stay bounded.
        self._stamps: dict[tuple[int, str], int] = {}
        self._old_stamps: dict[tuple[int, str], int] = {}
        self._workspace_stamps: dict[int, int] = {}
        self._rotated_at = monotonic()
        self._counter = 0
        self._cleared_at = 0
        self.enabled = False

    def __len__(self) -> int:
        return len(self._entries)

    def mark(self) -> int:
        """A token taken before a claim; `remember` refuses results that a notice overtook."""
        return self._counter

    def get(self, workspace_id: int, user: str) -> Quiet | None:
        if not self.enabled:
            return None
        entry = self._entries.get((workspace_id, user))
        if entry is None:
            return None
        if entry.until <= self._monotonic():
            del self._entries[(workspace_id, user)]
            return None
        return entry

    def remember(self, workspace_id: int, user: str, last_message_at: datetime | None, mark: int) -> bool:
        # Every invalidation stamps a counter value above the marks taken before it.
        if not self.enabled or self._cleared_at > mark:
            return False
        for key in _keys(workspace_id, user):
            if self._stamps.get(key, -1) > mark or self._old_stamps.get(key, -1) > mark:
                return False
        if self._workspace_stamps.get(workspace_id, -1) > mark:
            return False
        if len(self._entries) >= _MAX_ENTRIES:
            self._entries.clear()
            self._spellings.clear()
        self._entries[(workspace_id, user)] = Quiet(last_message_at, self._monotonic() + self._ttl_s)
        if user.lower() != user:
            self._spellings.setdefault((workspace_id, user.lower()), set()).add(user)
        return True

    def forget(self, workspace_id: int, keys: Iterable[str]) -> None:
        """A message may be deliverable for the person known by these keys (external id, email)."""
        self._counter += 1
        self._rotate()
        for key in keys:
            for variant in _keys(workspace_id, key):
                self._stamps[variant] = self._counter
                self._entries.pop(variant, None)
            # Entries stored under other spellings of the same email.
            for spelling in self._spellings.pop((workspace_id, key.lower()), ()):
                self._entries.pop((workspace_id, spelling), None)

    def forget_workspace(self, workspace_id: int) -> None:
        self._counter += 1
        self._workspace_stamps[workspace_id] = self._counter
        for key in [k for k in self._entries if k[0] == workspace_id]:
            del self._entries[key]

    def clear(self) -> None:
        """Forget everything (the listener reconnected or went down)."""
        self._counter += 1
        self._cleared_at = self._counter
        self._entries.clear()
        self._spellings.clear()

    def _rotate(self) -> None:
        now = self._monotonic()
        if now - self._rotated_at > max(self._ttl_s, 60.0):
            self._old_stamps, self._stamps = self._stamps, {}
            self._rotated_at = now


def _keys(workspace_id: int, user: str) -> tuple[tuple[int, str], ...]:
    lowered = user.lower()
    if lowered == user:
        return ((workspace_id, user),)
    return ((workspace_id, user), (workspace_id, lowered))
