"""Driver errors are translated at the edge of storage: every "database gone or busy" is a 503."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from storage.errors import Conflict, StorageUnavailable, is_read_only, is_unavailable, translate_errors

# Each class seen (or possible) while PostgreSQL stops, starts, fails over or is overloaded.
UNAVAILABLE = [
    asyncpg.exceptions.InternalClientError("cannot perform operation: another operation is in progress"),
    # No host of a multi-host URL accepts writes yet: a failover is under way.
    asyncpg.exceptions.TargetServerAttributeNotMatched("None of the hosts match the target attribute requirement"),
    asyncpg.exceptions.ProtocolError("unexpected message"),
    asyncpg.exceptions.OutdatedSchemaCacheError("cached statement plan is invalid"),
    asyncpg.exceptions.InterfaceError("cannot perform operation: another operation is in progress"),
    asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.exceptions.ConnectionFailureError("connection failure"),
    asyncpg.exceptions.ReadOnlySQLTransactionError("cannot execute UPDATE in a read-only transaction"),
    asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
    asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
    asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.exceptions.CrashShutdownError("terminating connection because of crash of another process"),
    asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout"),
    asyncpg.exceptions.LockNotAvailableError("could not obtain lock"),
    asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
    asyncpg.exceptions.SerializationError("could not serialize access"),
    asyncpg.exceptions.InsufficientResourcesError("out of memory"),
    ConnectionRefusedError(111, "Connection refused"),
    ConnectionResetError(104, "Connection reset by peer"),
    OSError(113, "No route to host"),
    TimeoutError(),
]


def _raising(exc: BaseException):  # type: ignore[no-untyped-def]
    @translate_errors
    async def operation() -> None:
        raise exc

    return operation


@pytest.mark.parametrize("exc", UNAVAILABLE, ids=lambda e: type(e).__name__)
async def test_a_database_gone_or_busy_is_storage_unavailable(exc: BaseException) -> None:
    with pytest.raises(StorageUnavailable) as caught:
        await _raising(exc)()
    assert caught.value.__cause__ is exc
    assert type(exc).__name__ in str(caught.value)


@pytest.mark.parametrize("exc", UNAVAILABLE, ids=lambda e: type(e).__name__)
def test_is_unavailable_agrees_with_the_translation(exc: BaseException) -> None:
    """The error middleware's net for untranslated errors uses the same list."""
    assert is_unavailable(exc)
    assert is_unavailable(StorageUnavailable())


@pytest.mark.parametrize(
    "exc", [asyncpg.exceptions.SyntaxOrAccessError("syntax error"), ValueError("a bug"), Conflict("pkey")],
    ids=lambda e: type(e).__name__,
)
def test_is_unavailable_leaves_bugs_and_conflicts_alone(exc: BaseException) -> None:
    assert not is_unavailable(exc)


def test_only_sqlstate_25006_says_read_only() -> None:
    assert is_read_only(asyncpg.exceptions.ReadOnlySQLTransactionError("cannot execute INSERT in read-only mode"))
    assert not is_read_only(asyncpg.exceptions.ConnectionDoesNotExistError("closed"))
    assert not is_read_only(StorageUnavailable())


async def test_a_unique_violation_is_a_conflict_naming_the_constraint() -> None:
    exc = asyncpg.exceptions.UniqueViolationError("duplicate key")
    exc.constraint_name = "people_workspace_id_email_key"  # type: ignore[attr-defined]
    with pytest.raises(Conflict) as caught:
        await _raising(exc)()
    assert caught.value.constraint == "people_workspace_id_email_key"


@pytest.mark.parametrize(
    "exc",
    [asyncpg.exceptions.SyntaxOrAccessError("syntax error"), ValueError("a bug"), KeyError("a bug")],
    ids=lambda e: type(e).__name__,
)
async def test_a_bug_stays_a_bug(exc: BaseException) -> None:
    """Only "retry later" errors become 503s; a bug must still surface as one (logged, 500)."""
    with pytest.raises(type(exc)):
        await _raising(exc)()


async def test_cancellation_is_not_translated() -> None:
    with pytest.raises(asyncio.CancelledError):
        await _raising(asyncio.CancelledError())()
