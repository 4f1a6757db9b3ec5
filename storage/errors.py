"""Storage errors: driver failures are translated here, at the edge of `storage/`.

    StorageError
    ├── StorageUnavailable   the database cannot be reached or is overloaded (retry later)
    ├── Conflict             a unique constraint refused a write (carries the constraint name)
    ├── LimitExceeded        a write would take a person past a limit; nothing was written
    └── MigrationError       the migrations on disk and in the database disagree
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import asyncpg

__all__ = [
    "Conflict",
    "LimitExceeded",
    "MigrationError",
    "StorageError",
    "StorageUnavailable",
    "is_read_only",
    "is_unavailable",
    "translate_errors",
]


class StorageError(Exception):
    """The database refused or failed an operation."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class StorageUnavailable(StorageError):
    """The database is unreachable or overloaded; retry shortly."""


class Conflict(StorageError):
    """A unique constraint refused the write."""

    def __init__(self, constraint: str | None, message: str | None = None) -> None:
        super().__init__(message or f"unique constraint {constraint!r} refused the write")
        self.constraint = constraint


class LimitExceeded(StorageError):
    """A write would take a person's attributes past a limit; it was rolled back."""

    def __init__(self, count: int, size: int) -> None:
        super().__init__(f"the write would leave {count} attributes of {size} bytes")
        self.count = count
        self.size = size


class MigrationError(StorageError):
    """The applied migrations do not match the files on disk."""


class RefusedWrite(Exception):
    """Raised inside a transaction so that a write the workspace refuses leaves nothing behind.

    Internal to storage: callers get an outcome saying `disabled`, never this exception.
    """


# Every driver error that means "the database is gone, stopping, starting, read-only or busy":
# the request may succeed if retried shortly, so it is a 503, never a 500. InternalClientError
# is what asyncpg raises on a connection left mid-operation by a server that went away, and the
# base of TargetServerAttributeNotMatched (no host of a multi-host URL accepts writes, mid-failover);
# it subclasses plain Exception, so it is named here. ReadOnlySQLTransactionError (25006) is a
# connection that still reaches a demoted primary (docs/decisions/0024-failover.md).
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.ReadOnlySQLTransactionError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.QueryCanceledError,
    asyncpg.exceptions.LockNotAvailableError,
    ConnectionError,
    OSError,
    TimeoutError,
    asyncio.TimeoutError,
)



def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means "retry shortly": a driver or network error of a database gone, changing or busy."""
    return isinstance(exc, (StorageUnavailable, *_UNAVAILABLE))


def is_read_only(exc: BaseException) -> bool:
    """Whether `exc` says the server refuses writes (SQLSTATE 25006): it is, or became, a standby."""
    return isinstance(exc, asyncpg.exceptions.ReadOnlySQLTransactionError)


P = ParamSpec("P")
R = TypeVar("R")


def translate_errors(func: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Turn driver exceptions of a storage function into `StorageError` subclasses."""

    @functools.wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await func(*args, **kwargs)
        except asyncpg.exceptions.UniqueViolationError as exc:
            raise Conflict(exc.constraint_name) from exc
        except _UNAVAILABLE as exc:
            raise StorageUnavailable(f"database unavailable: {exc.__class__.__name__}") from exc

    return wrapper
