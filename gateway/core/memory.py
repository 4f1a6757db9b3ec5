"""What this process knows without asking the database: people with nothing a poll could get.

Why: an empty poll is by far the most common request, and a claim statement per empty poll caps
a 2-core host at a few thousand polls per second. Every change that can make a message claimable
NOTIFYs every process (sends, broadcasts, resends, triggers, identify linking an email), and the
listener drops the matching entries here before it wakes held polls. The full safety argument,
case by case, is docs/decisions/0021-answer-from-memory.md; the rules it rests on:

- An entry is written only from a claim that saw nothing queued or offered (for any device) and
  no persistent message on display, so no lease can run out under it and every device of the
  person gets the same (empty) answer.
- A claim whose person a notice named while it ran does not write its result: `mark()` is taken
  before the claim and every notice stamps a counter value above it (per key, per workspace for a
  broadcast, everywhere for a reconnect).
- Entries are trusted only while the listener is connected; a (re)connect clears everything.
- Entries expire after `ttl_s` anyway, the bound for any writer that does not notify.
- An entry remembers which devices claimed while it lived, so each device still reaches the
  database (its console "last poll") at least once per `ttl_s`.
A short poll also waits for a commit-order barrier (gateway/core/barrier.py) before trusting an
entry; a held poll need not, because it is parked before it looks and any later notice wakes it.

The census (decision 0028, gateway/core/census.py) answers for people without an entry: loaded
from the database after the listener connected, it lists everyone who has anything a claim could
return or is not in the `low` tier; every notice after its mark adds the keys it names (a notice
without keys, a broadcast or a settings change takes the workspace out), and it lapses after
`ttl_s` like an entry. A person it does not list is quiet and `low`, with the same barrier for
short polls.

Offers a device acknowledges (decision 0045): a claim that hands one device offers and saw
nothing else pending for the person (`pending_elsewhere`), nothing on display and no visit to
come, is noted with its mark. When that device's next poll reports every one of those offers
`shown` (or `dismissed`) and the reports were accepted, nothing is pending any more, as of that
claim's snapshot plus the notices heard since: the note becomes an entry through `remember`, with
the claim's mark, so any notice since the claim refuses it. An accepted report is what proves
that no other device took an offer in between (a lapsed lease another device claimed makes the
report a rejection). Notes live `ttl_s` from their claim and go with `clear()`.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable
from datetime import datetime

from storage import Census as CensusRows

from .census import Census

__all__ = ["MAX_CENSUS_BACKOFF", "MAX_DEVICES", "Memory", "Offers", "Quiet"]

# Devices remembered per entry; another device's poll goes to the database (and joins the entry).
MAX_DEVICES = 8
# The longest wait after failed census reads, in ttls (16 min at the default 30 s).
MAX_CENSUS_BACKOFF = 32


class Quiet:
    """One person known to have nothing pending: the tier's fact, its expiry, the devices seen."""

    __slots__ = ("_devices", "last_message_at", "mark", "until")

    def __init__(self, last_message_at: datetime | None, until: float, mark: int, device_id: str) -> None:
        self.last_message_at = last_message_at
        self.until = until
        self.mark = mark
        # The one device id, and a set only once a second device polls: most people hold one poll,
        # and a one-element set is 216 B of every held poll (docs/decisions/0029-held-poll-memory.md).
        self._devices: str | set[str] = device_id

    @property
    def device_count(self) -> int:
        devices = self._devices
        return 1 if isinstance(devices, str) else len(devices)

    def has_device(self, device_id: str) -> bool:
        devices = self._devices
        return devices == device_id if isinstance(devices, str) else device_id in devices

    def add_device(self, device_id: str) -> None:
        devices = self._devices
        if isinstance(devices, set):
            devices.add(device_id)
        elif devices != device_id:
            self._devices = {devices, device_id}


class Offers:
    """Offers one claim handed one device while nothing else was pending for the person (decision 0045)."""

    __slots__ = ("ids", "last_message_at", "mark", "rotations", "until")

    def __init__(self, ids: frozenset[uuid.UUID], last_message_at: datetime | None, mark: int, rotations: int,
                 until: float) -> None:
        self.ids = ids
        self.last_message_at = last_message_at
        self.mark = mark
        self.rotations = rotations
        self.until = until


class Memory:
    """A bounded LRU of quiet people, keyed by (workspace, the user string a device polls with)."""

    def __init__(self, ttl_s: float, *, max_entries: int = 100_000,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._monotonic = monotonic
        self._entries: OrderedDict[tuple[int, str], Quiet] = OrderedDict()
        # Lower-cased email → the other spellings devices poll with, so one notice drops them all.
        self._spellings: dict[tuple[int, str], set[str]] = {}
        # Invalidation stamps, in two generations rotated every ttl_s, so they stay bounded.
        self._stamps: dict[tuple[int, str], int] = {}
        self._old_stamps: dict[tuple[int, str], int] = {}
        # A broadcast's notice names no one: it stamps its workspace, and entries older than it lapse.
        self._workspace_stamps: dict[int, int] = {}
        self._rotated_at = monotonic()
        self._rotations = 0
        self._counter = 0
        self._cleared_at = 0
        self._census: Census | None = None
        self._census_retry_at = -math.inf
        self._census_failures = 0  # failed or unkept reads in a row
        # (workspace, user, device) -> offers the device may acknowledge into an entry (decision 0045).
        self._offers: OrderedDict[tuple[int, str, str], Offers] = OrderedDict()
        self.enabled = False

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def max_entries(self) -> int:
        """Also the most unsettled people a census may list before it is not kept."""
        return self._max_entries

    def mark(self) -> int:
        """A token taken before a claim; `remember` refuses results that a notice overtook."""
        return self._counter

    def get(self, workspace_id: int, user: str, device_id: str | None = None) -> Quiet | None:
        """The entry, if trusted now (and, given a device, if that device polled while it lived)."""
        if not self.enabled:
            return None
        key = (workspace_id, user)
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.until <= self._monotonic() or self._workspace_stamps.get(workspace_id, -1) > entry.mark:
            self._drop(key)
            return None
        if device_id is not None and not entry.has_device(device_id):
            return None
        self._entries.move_to_end(key)
        return entry

    def mark_and_rotations(self) -> tuple[int, int]:
        """`mark()` and the stamps' rotations, taken before a census read or a claim whose offers may
        be noted: a result kept after more than one rotation could miss a notice (`install_census`,
        `acknowledge`)."""
        return self._counter, self._rotations

    def note_offers(self, workspace_id: int, user: str, device_id: str, ids: frozenset[uuid.UUID],
                    last_message_at: datetime | None, mark: tuple[int, int]) -> None:
        """A claim taken after `mark` handed `device_id` these offers and saw nothing else pending,
        nothing on display and no visit to come; the device's next poll may acknowledge them."""
        if not self.enabled or self._ttl_s <= 0:
            return
        key = (workspace_id, user, device_id)
        counter, rotations = mark
        self._offers[key] = Offers(ids, last_message_at, counter, rotations, self._monotonic() + self._ttl_s)
        self._offers.move_to_end(key)
        if len(self._offers) > self._max_entries:
            self._offers.popitem(last=False)

    def drop_offers(self, workspace_id: int, user: str, device_id: str) -> None:
        """A later claim of the device: what an earlier one noted no longer describes it."""
        if self._offers:
            self._offers.pop((workspace_id, user, device_id), None)

    def acknowledge(self, workspace_id: int, user: str, device_id: str, ended: Collection[uuid.UUID]) -> str | None:
        """The device's accepted reports ended the messages `ended` (shown or dismissed): make its
        noted offers an entry if they were all ended and no notice, rotation or clear came since
        their claim. The note goes either way. Returns None (nothing noted), `acked` (an entry now),
        `unacked` (an offer not ended) or `refused`."""
        offers = self._offers.pop((workspace_id, user, device_id), None) if self._offers else None
        if offers is None:
            return None
        if not all(message_id in ended for message_id in offers.ids):
            return "unacked"
        # Stamps older than the last rotation are gone: a notice since the mark could be forgotten.
        if offers.until <= self._monotonic() or self._rotations - offers.rotations > 1:
            return "refused"
        if not self.remember(workspace_id, user, device_id, offers.last_message_at, offers.mark):
            return "refused"
        return "acked"

    def census_due(self) -> bool:
        """No trusted census (never loaded, lapsed or cleared) and no failed read within `ttl_s`: read one."""
        if not self.enabled or self._ttl_s <= 0:
            return False
        now = self._monotonic()
        return (self._census is None or self._census.until <= now) and self._census_retry_at <= now

    def census_failed(self) -> None:
        """A read failed or was not kept (too many people): the next waits `ttl_s`, doubling with
        each failure in a row up to `MAX_CENSUS_BACKOFF` ttls: a database whose census is too big or
        too slow to read is not scanned again every ttl by every process."""
        self._census_failures += 1
        backoff = min(2 ** (self._census_failures - 1), MAX_CENSUS_BACKOFF)
        self._census_retry_at = self._monotonic() + self._ttl_s * backoff

    def install_census(self, rows: CensusRows, mark: tuple[int, int]) -> bool:
        """Trust a census read after `mark_and_rotations()`, with every notice heard since added to it.

        Refused when incomplete, when a clear (reconnect) came since the mark, or when the stamps
        of the notices since the mark may have rotated away."""
        counter, rotations = mark
        if not self.enabled or not rows.complete or self._cleared_at > counter or self._rotations - rotations > 1:
            return False
        census = Census.from_rows(rows, counter, self._monotonic() + self._ttl_s)
        for stamps in (self._old_stamps, self._stamps):
            for (workspace_id, key), stamp in stamps.items():
                if stamp > counter:
                    census.add_notified(workspace_id, key)
        self._census = census
        self._census_failures = 0
        return True

    def census_quiet(self, workspace_id: int, user: str) -> bool:
        """True when the census proves that this person has nothing a claim could return and is `low`."""
        census = self._census
        if not self.enabled or census is None or census.until <= self._monotonic():
            return False
        if workspace_id in census.invalid or self._workspace_stamps.get(workspace_id, -1) > census.mark:
            return False
        return not census.lists(workspace_id, user)

    def remember(self, workspace_id: int, user: str, device_id: str, last_message_at: datetime | None,
                 mark: int) -> bool:
        """Record a claim that found nothing pending, unless a notice overtook it (see `mark`)."""
        # Every invalidation stamps a counter value above the marks taken before it.
        if not self.enabled or self._cleared_at > mark or self._ttl_s <= 0:
            return False
        for key in _keys(workspace_id, user):
            if self._stamps.get(key, -1) > mark or self._old_stamps.get(key, -1) > mark:
                return False
        if self._workspace_stamps.get(workspace_id, -1) > mark:
            return False
        key = (workspace_id, user)
        entry = self._entries.get(key)
        if entry is not None and entry.until > self._monotonic() and entry.device_count < MAX_DEVICES:
            # The older entry is still true (nothing dropped it since its own claim): add the device.
            entry.add_device(device_id)
            entry.last_message_at = last_message_at
            entry.mark = max(entry.mark, mark)
            self._entries.move_to_end(key)
            return True
        self._entries[key] = Quiet(last_message_at, self._monotonic() + self._ttl_s, mark, device_id)
        self._entries.move_to_end(key)
        if user.lower() != user:
            self._spellings.setdefault((workspace_id, user.lower()), set()).add(user)
        while len(self._entries) > self._max_entries:
            self._drop(next(iter(self._entries)))
        return True

    def forget(self, workspace_id: int, keys: Iterable[str]) -> None:
        """A message may be claimable for the person known by these keys (external id, email)."""
        self._counter += 1
        self._rotate()
        census = self._census
        if census is not None:
            if not keys:  # an older gateway's notice names no one: the census cannot say who
                census.invalid.add(workspace_id)
            for key in keys:
                census.add_notified(workspace_id, key)
        for key in keys:
            for variant in _keys(workspace_id, key):
                self._stamps[variant] = self._counter
                self._drop(variant)
            # Entries stored under other spellings of the same email.
            for spelling in tuple(self._spellings.get((workspace_id, key.lower()), ())):
                self._drop((workspace_id, spelling))

    def forget_workspace(self, workspace_id: int) -> None:
        """Anyone of the workspace may have a claimable message (a broadcast, a settings change): O(1)."""
        self._counter += 1
        self._workspace_stamps[workspace_id] = self._counter

    def clear(self) -> None:
        """Forget everything (the listener reconnected or went down)."""
        self._counter += 1
        self._cleared_at = self._counter
        self._census = None
        self._entries.clear()
        self._offers.clear()
        self._spellings.clear()
        self._workspace_stamps.clear()
        self._stamps.clear()
        self._old_stamps.clear()

    def _drop(self, key: tuple[int, str]) -> None:
        if self._entries.pop(key, None) is None:
            return
        workspace_id, user = key
        lowered = user.lower()
        if lowered != user:
            spellings = self._spellings.get((workspace_id, lowered))
            if spellings is not None:
                spellings.discard(user)
                if not spellings:
                    del self._spellings[(workspace_id, lowered)]

    def _rotate(self) -> None:
        now = self._monotonic()
        if now - self._rotated_at > max(self._ttl_s, 60.0):
            self._old_stamps, self._stamps = self._stamps, {}
            self._rotated_at = now
            self._rotations += 1


def _keys(workspace_id: int, user: str) -> tuple[tuple[int, str], ...]:
    lowered = user.lower()
    if lowered == user:
        return ((workspace_id, user),)
    return ((workspace_id, user), (workspace_id, lowered))
