"""Configuration: the only module that reads `os.environ`.

Every setting is a `MAILSLOT_<NAME>` variable and a command-line flag; a flag beats the
environment, which beats the default. A bad value stops startup naming the variable and value.
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .core.ratelimits import Limit, parse_limit

__all__ = ["ENV_PREFIX", "SETTINGS", "Config", "ConfigError", "Setting", "load_config"]

ENV_PREFIX = "MAILSLOT_"


# Default rate limits, per process (`Limit` is frozen, so one instance can be every default).
_ADDRESS_LIMIT = Limit(rate_per_s=100, burst=1000)
_SITE_LIMIT = Limit(rate_per_s=1000, burst=5000)
_PERSON_LIMIT = Limit(rate_per_s=10, burst=300)
_EVENTS_LIMIT = Limit(rate_per_s=10, burst=500)
_API_KEY_LIMIT = Limit(rate_per_s=500, burst=2000)


class ConfigError(ValueError):
    """A setting has a value that cannot be used."""


@dataclass(frozen=True, slots=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8080
    # Empty: start the embedded PostgreSQL under data_dir.
    database_url: str = ""
    data_dir: Path = Path(".mailslot")
    workers: int = 0
    # 0: as many as pool_max, all opened at start (docs/decisions/0036-connections-per-worker.md).
    pool_min: int = 0
    pool_max: int = 10
    db_acquire_timeout_s: float = 2.0
    db_statement_timeout_s: float = 5.0
    max_body_bytes: int = 64 * 1024
    # POST /v1/messages/batch only: up to 1,000 messages of about 4 KiB each.
    max_batch_body_bytes: int = 4 * 1024 * 1024
    max_wait_s: int = 60
    claim_limit: int = 10
    expire_interval_s: int = 60
    retention_interval_s: int = 3600
    workspace_cache_s: float = 5.0
    max_parked: int = 100_000
    max_parked_per_person: int = 10
    shutdown_timeout_s: float = 10.0
    restart_limit: int = 10
    restart_window_s: float = 60.0
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keepalive_timeout_s: float = 75.0
    max_connections_per_ip: int = 1000
    listener_probe_s: float = 10.0
    quiet_ttl_s: float = 30.0
    # Answer polls of people with nothing pending from memory (docs/decisions/0021-answer-from-memory.md).
    poll_cache: bool = True
    poll_cache_size: int = 100_000
    device_polls_flush_s: float = 10.0
    metrics_dir: Path | None = None
    demo_workspace: bool = True
    log_level: str = "INFO"
    # Rate limits (gateway/core/ratelimits.py): per process; None turns one off. The defaults sit far
    # above what an SDK client does (a poll every 10 s or a held one, a burst at page load).
    rate_limits: bool = True
    rate_limit_address: Limit | None = _ADDRESS_LIMIT
    rate_limit_site: Limit | None = _SITE_LIMIT
    rate_limit_person: Limit | None = _PERSON_LIMIT
    rate_limit_events: Limit | None = _EVENTS_LIMIT
    rate_limit_api_key: Limit | None = _API_KEY_LIMIT
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    max_event_data_bytes: int = 8 * 1024
    # The console (decision 0020): how long a sign-in lasts.
    console_session_s: int = 12 * 3600


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError("must be a finite number of seconds, not negative")
    return value


def _interval(text: str) -> float:
    value = _seconds(text)
    if value == 0:
        raise ValueError("must be more than 0 seconds")
    return value


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def _log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("expected DEBUG, INFO, WARNING or ERROR")
    return level


def _networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Comma-separated addresses or CIDR networks, such as `10.0.0.0/8, ::1`; empty: none."""
    return tuple(ipaddress.ip_network(part.strip()) for part in text.split(",") if part.strip())


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    parse: Callable[[str], Any]
    help: str

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


SETTINGS: tuple[Setting, ...] = (
    Setting("host", str, "address to listen on"),
    Setting("port", _positive_int, "port to listen on"),
    Setting("database_url", str, "PostgreSQL URL; empty starts the embedded server under the data folder"),
    Setting("data_dir", Path, "data folder of the embedded PostgreSQL"),
    Setting("workers", _positive_int, "gateway processes sharing the port (0: one per core)"),
    Setting("pool_min", _positive_int, "database connections each process keeps open (0: all of pool_max)"),
    Setting("pool_max", _positive_int, "most database connections per process"),
    Setting("db_acquire_timeout_s", _interval,
            "seconds a request waits for a free database connection before answering 503"),
    Setting("db_statement_timeout_s", _interval,
            "seconds a statement may run before the request answers 503 (bulk statements have their own)"),
    Setting("max_body_bytes", _at_least_one, "largest request body accepted, in bytes"),
    Setting("max_batch_body_bytes", _at_least_one, "largest body of POST /v1/messages/batch, in bytes"),
    Setting("max_wait_s", _positive_int, "longest a poll may be held open, in seconds"),
    Setting("claim_limit", _at_least_one, "most new messages one poll claims"),
    Setting("expire_interval_s", _at_least_one, "seconds between expiry sweeps"),
    Setting("retention_interval_s", _at_least_one,
            "seconds between retention sweeps, which delete final messages past their workspace's retention_days"),
    Setting("workspace_cache_s", _seconds, "seconds a process trusts its cached workspace settings"),
    Setting("max_parked", _positive_int, "most polls one process holds open; the rest are answered at once"),
    Setting("max_parked_per_person", _at_least_one, "most held polls per person per process"),
    Setting("shutdown_timeout_s", _seconds, "seconds in-flight requests get to finish on SIGTERM"),
    Setting("restart_limit", _at_least_one, "most worker failures within restart_window_s before serve gives up"),
    Setting("restart_window_s", _interval, "seconds over which worker failures are counted"),
    Setting("header_timeout_s", _interval, "seconds a client gets to send a request's headers"),
    Setting("body_timeout_s", _interval, "seconds a client gets to send a request's body"),
    Setting("keepalive_timeout_s", _interval, "seconds an idle keep-alive connection stays open"),
    Setting("max_connections_per_ip", _positive_int, "most open connections from one address per process (0: no cap)"),
    Setting("listener_probe_s", _interval, "seconds of silence before the LISTEN connection is probed"),
    Setting("quiet_ttl_s", _seconds, "seconds an empty poll result is reused without the database (0: never)"),
    Setting("poll_cache", _bool,
            "answer polls of people with nothing pending from memory (false: every poll asks the database)"),
    Setting("poll_cache_size", _at_least_one, "most people one process remembers as having nothing pending"),
    Setting("device_polls_flush_s", _interval,
            "seconds between writes of devices' last poll times (the console's person page)"),
    Setting("metrics_dir", Path, "folder shared by worker processes for /metrics (set by serve)"),
    Setting("demo_workspace", _bool, "create a demo workspace on first start"),
    Setting("log_level", _log_level, "DEBUG, INFO, WARNING or ERROR"),
    Setting("rate_limits", _bool, "enforce the rate limits below (false: none, e.g. for benchmarks)"),
    Setting("rate_limit_address", parse_limit,
            "requests per client address without an API key, RATE/UNIT[:BURST] (unit s, min or h) or off"),
    Setting("rate_limit_site", parse_limit, "device requests per site (workspace), RATE/UNIT[:BURST] or off"),
    Setting("rate_limit_person", parse_limit, "device requests per site and person, RATE/UNIT[:BURST] or off"),
    Setting("rate_limit_events", parse_limit,
            "events a person writes (tracked, or reported: one per event), RATE/UNIT[:BURST] or off"),
    Setting("rate_limit_api_key", parse_limit, "server-API requests per workspace, RATE/UNIT[:BURST] or off"),
    Setting("trusted_proxies", _networks,
            "proxies (addresses or CIDR, comma-separated) whose X-Forwarded-For names the client"),
    Setting("max_event_data_bytes", _at_least_one, "largest `data` of one tracked event, in bytes of JSON"),
    Setting("console_session_s", _at_least_one, "seconds a console sign-in lasts before the console asks again"),
)


def load_config(
    environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> Config:
    """Defaults, then `MAILSLOT_*` variables, then explicit overrides (command-line flags)."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = environ.get(setting.env)
        if raw is None:
            continue
        try:
            values[setting.name] = setting.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{setting.env}={raw!r}: {exc}") from None
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = value
    known = {f.name for f in fields(Config)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(sorted(unknown))}")
    config = Config(**values)
    if config.pool_max < 2 or config.pool_min > config.pool_max:
        raise ConfigError(
            f"pool sizes: need 2 <= pool_max and pool_min <= pool_max, got {config.pool_min}/{config.pool_max}"
        )
    if not 1 <= config.port <= 65535:
        raise ConfigError(f"{ENV_PREFIX}PORT={config.port}: not a TCP port")
    return config
