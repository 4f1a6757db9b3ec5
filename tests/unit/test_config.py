"""Configuration: defaults, `MAILSLOT_*` variables, flags over variables, and bad values named."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from gateway.config import ENV_PREFIX, SETTINGS, Config, ConfigError, load_config


def test_no_variables_gives_the_defaults() -> None:
    config = load_config(environ={})
    assert config == Config()
    assert (config.host, config.port) == ("127.0.0.1", 8080)
    assert config.database_url == ""  # the embedded server
    assert config.data_dir == Path(".mailslot")
    assert config.max_body_bytes == 64 * 1024
    assert config.max_wait_s == 60
    assert config.log_level == "INFO"
    assert config.demo_workspace is True


def test_every_setting_is_a_variable_and_a_flag() -> None:
    assert [s.name for s in SETTINGS] == [f.name for f in dataclasses.fields(Config)]
    for setting in SETTINGS:
        assert setting.env == ENV_PREFIX + setting.name.upper()
        assert setting.flag == "--" + setting.name.replace("_", "-")
        assert setting.help


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("variable", "raw", "field", "expected"),
    [
        ("MAILSLOT_HOST", "0.0.0.0", "host", "0.0.0.0"),
        ("MAILSLOT_PORT", "9000", "port", 9000),
        ("MAILSLOT_PORT", " 9000 ", "port", 9000),
        ("MAILSLOT_DATABASE_URL", "postgresql://u:p@db:5432/mailslot", "database_url",
         "postgresql://u:p@db:5432/mailslot"),
        ("MAILSLOT_DATA_DIR", "/var/lib/mailslot", "data_dir", Path("/var/lib/mailslot")),
        ("MAILSLOT_WORKERS", "4", "workers", 4),
        ("MAILSLOT_POOL_MIN", "1", "pool_min", 1),
        ("MAILSLOT_POOL_MAX", "50", "pool_max", 50),
        ("MAILSLOT_MAX_BODY_BYTES", "1024", "max_body_bytes", 1024),
        ("MAILSLOT_MAX_WAIT_S", "5", "max_wait_s", 5),
        ("MAILSLOT_CLAIM_LIMIT", "3", "claim_limit", 3),
        ("MAILSLOT_WORKSPACE_CACHE_S", "0.5", "workspace_cache_s", 0.5),
        ("MAILSLOT_METRICS_DIR", "/tmp/metrics", "metrics_dir", Path("/tmp/metrics")),
        ("MAILSLOT_DEMO_WORKSPACE", "false", "demo_workspace", False),
        ("MAILSLOT_DEMO_WORKSPACE", "0", "demo_workspace", False),
        ("MAILSLOT_DEMO_WORKSPACE", "No", "demo_workspace", False),
        ("MAILSLOT_DEMO_WORKSPACE", "off", "demo_workspace", False),
        ("MAILSLOT_DEMO_WORKSPACE", "TRUE", "demo_workspace", True),
        ("MAILSLOT_DEMO_WORKSPACE", "yes", "demo_workspace", True),
        ("MAILSLOT_DEMO_WORKSPACE", " on ", "demo_workspace", True),
        ("MAILSLOT_LOG_LEVEL", "debug", "log_level", "DEBUG"),
        ("MAILSLOT_LOG_LEVEL", "Warning", "log_level", "WARNING"),
    ],
)
def test_variables_are_parsed(variable: str, raw: str, field: str, expected: Any) -> None:
    config = load_config(environ={variable: raw})
    assert getattr(config, field) == expected
    assert dataclasses.replace(config, **{field: getattr(Config(), field)}) == Config()


def test_flag_beats_variable_beats_default() -> None:
    assert load_config(environ={}).port == 8080
    assert load_config(environ={"MAILSLOT_PORT": "9000"}).port == 9000
    assert load_config(environ={"MAILSLOT_PORT": "9000"}, overrides={"port": 9100}).port == 9100
    assert load_config(environ={}, overrides={"port": 9100}).port == 9100


def test_an_absent_flag_leaves_the_variable() -> None:
    """argparse gives None for a flag not on the command line."""
    config = load_config(environ={"MAILSLOT_PORT": "9000", "MAILSLOT_HOST": "::"},
                         overrides={"port": None, "host": None})
    assert (config.host, config.port) == ("::", 9000)


def test_settings_combine_from_both_sources() -> None:
    config = load_config(environ={"MAILSLOT_HOST": "0.0.0.0", "MAILSLOT_PORT": "9000"},
                         overrides={"port": 9100, "log_level": "ERROR"})
    assert (config.host, config.port, config.log_level) == ("0.0.0.0", 9100, "ERROR")


def test_reads_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILSLOT_PORT", "9001")
    monkeypatch.setenv("MAILSLOT_DEMO_WORKSPACE", "false")
    config = load_config()
    assert (config.port, config.demo_workspace) == (9001, False)


def test_variables_without_the_prefix_are_ignored() -> None:
    assert load_config(environ={"PORT": "1", "port": "2", "mailslot_port": "3"}) == Config()


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("MAILSLOT_PORT", "eighty"),
        ("MAILSLOT_PORT", ""),
        ("MAILSLOT_PORT", "80.5"),
        ("MAILSLOT_PORT", "-1"),
        ("MAILSLOT_WORKERS", "many"),
        ("MAILSLOT_WORKERS", "-2"),
        ("MAILSLOT_POOL_MAX", "1e3"),
        ("MAILSLOT_MAX_BODY_BYTES", "64k"),
        ("MAILSLOT_MAX_WAIT_S", "-30"),
        ("MAILSLOT_WORKSPACE_CACHE_S", "five"),
        ("MAILSLOT_DEMO_WORKSPACE", "maybe"),
        ("MAILSLOT_DEMO_WORKSPACE", ""),
        ("MAILSLOT_LOG_LEVEL", "LOUD"),
        ("MAILSLOT_LOG_LEVEL", ""),
    ],
)
def test_a_bad_value_names_the_variable_and_the_value(variable: str, raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(environ={variable: raw})
    assert variable in str(caught.value)
    assert repr(raw) in str(caught.value)


@pytest.mark.parametrize("raw", ["0", "65536", "100000"])
def test_port_must_be_a_tcp_port(raw: str) -> None:
    with pytest.raises(ConfigError, match=f"MAILSLOT_PORT={raw}"):
        load_config(environ={"MAILSLOT_PORT": raw})


@pytest.mark.parametrize(("pool_min", "pool_max"), [("20", "10"), ("1", "1"), ("0", "0")])
def test_inconsistent_pool_sizes_stop_startup(pool_min: str, pool_max: str) -> None:
    with pytest.raises(ConfigError, match="pool"):
        load_config(environ={"MAILSLOT_POOL_MIN": pool_min, "MAILSLOT_POOL_MAX": pool_max})


def test_an_unknown_setting_is_refused() -> None:
    with pytest.raises(ConfigError, match="colour"):
        load_config(environ={}, overrides={"colour": "red"})


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        pytest.param("MAILSLOT_EXPIRE_INTERVAL_S", "0", id="expiry-sweep-every-0s-spins"),
        pytest.param("MAILSLOT_CLAIM_LIMIT", "0", id="claim-limit-0-never-delivers"),
        pytest.param("MAILSLOT_MAX_BODY_BYTES", "0", id="max-body-0-refuses-every-body"),
        pytest.param("MAILSLOT_LISTENER_PROBE_S", "-1", id="negative-probe-interval"),
        pytest.param("MAILSLOT_SHUTDOWN_TIMEOUT_S", "nan", id="nan-shutdown-timeout"),
        pytest.param("MAILSLOT_WORKSPACE_CACHE_S", "inf", id="infinite-workspace-cache"),
    ],
)
def test_unusable_values_stop_startup(variable: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        load_config(environ={variable: raw})


# --- Rate limits ---------------------------------------------------------------------------------


def test_rate_limits_are_on_by_default() -> None:
    from gateway.core.ratelimits import Limit

    config = Config()
    assert config.rate_limits is True
    assert config.rate_limit_address == Limit(100, 1000)
    assert config.rate_limit_person == Limit(10, 300)
    assert config.trusted_proxies == ()
    assert config.max_event_data_bytes == 8192


@pytest.mark.parametrize(
    ("variable", "raw", "field", "expected"),
    [
        ("MAILSLOT_RATE_LIMITS", "off", "rate_limits", False),
        ("MAILSLOT_RATE_LIMIT_ADDRESS", "50/s:200", "rate_limit_address", (50.0, 200.0)),
        ("MAILSLOT_RATE_LIMIT_SITE", "6000/min", "rate_limit_site", (100.0, 6000.0)),
        ("MAILSLOT_RATE_LIMIT_PERSON", "off", "rate_limit_person", None),
        ("MAILSLOT_RATE_LIMIT_EVENTS", "3600/h:100", "rate_limit_events", (1.0, 100.0)),
        ("MAILSLOT_RATE_LIMIT_API_KEY", "1000/s:5000", "rate_limit_api_key", (1000.0, 5000.0)),
        ("MAILSLOT_TRUSTED_PROXIES", "", "trusted_proxies", ()),
        ("MAILSLOT_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1,::1", "trusted_proxies",
         ("10.0.0.0/8", "127.0.0.1/32", "::1/128")),
        ("MAILSLOT_MAX_EVENT_DATA_BYTES", "1024", "max_event_data_bytes", 1024),
    ],
)
def test_rate_limit_variables_are_parsed(variable: str, raw: str, field: str, expected: Any) -> None:
    value = getattr(load_config(environ={variable: raw}), field)
    if field.startswith("rate_limit_") and value is not None:
        value = (value.rate_per_s, value.burst)
    elif field == "trusted_proxies":
        value = tuple(str(network) for network in value)
    assert value == expected


def test_a_rate_limit_flag_beats_its_variable() -> None:
    from gateway.cli import _parser

    args = _parser().parse_args(["serve", "--rate-limit-person", "1/s:5", "--rate-limits", "false"])
    config = load_config(environ={"MAILSLOT_RATE_LIMIT_PERSON": "off"},
                         overrides={"rate_limit_person": args.rate_limit_person, "rate_limits": args.rate_limits})
    assert config.rate_limit_person is not None and config.rate_limit_person.burst == 5
    assert config.rate_limits is False


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("MAILSLOT_RATE_LIMITS", "sometimes"),
        ("MAILSLOT_RATE_LIMIT_ADDRESS", "100"),
        ("MAILSLOT_RATE_LIMIT_SITE", "100/day"),
        ("MAILSLOT_RATE_LIMIT_PERSON", "10/s:0"),
        ("MAILSLOT_RATE_LIMIT_EVENTS", "-5/s"),
        ("MAILSLOT_RATE_LIMIT_API_KEY", "lots"),
        ("MAILSLOT_TRUSTED_PROXIES", "10.0.0.0/33"),
        ("MAILSLOT_TRUSTED_PROXIES", "proxy.internal"),
        ("MAILSLOT_TRUSTED_PROXIES", "10.0.0.1/8"),
        ("MAILSLOT_MAX_EVENT_DATA_BYTES", "0"),
    ],
)
def test_a_bad_rate_limit_value_names_the_variable_and_the_value(variable: str, raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(environ={variable: raw})
    assert variable in str(caught.value)
    assert repr(raw) in str(caught.value)
