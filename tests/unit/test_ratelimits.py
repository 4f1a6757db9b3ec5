"""Rate-limit arithmetic without HTTP: buckets, their eviction, limit specs, overrides, client addresses."""

from __future__ import annotations

import math
from unittest import mock

import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from gateway.config import _networks
from gateway.core.ratelimits import Buckets, Limit, Limits, RateLimiter, parse_limit
from gateway.errors import RateLimited
from gateway.http.addresses import TrustedProxies, client_address
from storage import Workspace

PER_MINUTE = Limit(rate_per_s=1 / 60, burst=3)


def workspace(id: int = 1, **rate_limits: dict[str, float]) -> Workspace:
    return Workspace(
        id=id, name="w", site_id="site_w", identity_secret="s", identity_mode="off", in_app_enabled=True,
        active_s=10, inactive_s=60, low_s=180, recent_days=30, lease_s=300, rate_limits=dict(rate_limits),
    )


def test_a_bucket_allows_its_burst_then_says_how_long_to_wait() -> None:
    buckets = Buckets()
    assert [buckets.take("k", PER_MINUTE, 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("k", PER_MINUTE, 0.0) == pytest.approx(60)
    assert buckets.take("k", PER_MINUTE, 30.0) == pytest.approx(30)  # a refused request costs nothing
    assert buckets.take("k", PER_MINUTE, 60.0) == 0.0  # one token back after a minute
    assert buckets.take("k", PER_MINUTE, 60.0) > 0
    assert buckets.take("other", PER_MINUTE, 60.0) == 0.0  # keys are independent


def test_a_bucket_refills_to_its_burst_and_no_further() -> None:
    buckets = Buckets()
    buckets.take("k", PER_MINUTE, 0.0)
    assert [buckets.take("k", PER_MINUTE, 10_000.0) for _ in range(4)][:3] == [0.0, 0.0, 0.0]
    assert buckets.take("k", PER_MINUTE, 10_000.0) > 0


def test_a_cost_counts_as_that_many_requests_and_one_above_the_burst_needs_a_full_bucket() -> None:
    buckets = Buckets()
    events = Limit(rate_per_s=1, burst=150)
    assert buckets.take("ada", events, 0.0, cost=100) == 0.0
    assert buckets.take("ada", events, 0.0, cost=100) == pytest.approx(50)
    assert buckets.take("bob", events, 0.0, cost=1000) == 0.0  # capped at the burst: a full bucket
    assert buckets.take("bob", events, 0.0, cost=1) == pytest.approx(1)


def test_a_check_that_does_not_record_leaves_the_bucket_as_it_was() -> None:
    buckets = Buckets()
    for _ in range(5):
        assert buckets.take("k", PER_MINUTE, 0.0, record=False) == 0.0
    assert len(buckets) == 0
    assert [buckets.take("k", PER_MINUTE, 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]


def test_a_limit_loosened_while_a_bucket_is_overdrawn_treats_it_as_just_empty() -> None:
    buckets = Buckets()
    strict = Limit(rate_per_s=1 / 3600, burst=1)
    assert buckets.take("k", strict, 0.0) == 0.0
    loose = Limit(rate_per_s=10, burst=100)
    assert buckets.take("k", loose, 0.0) == pytest.approx(0.1)  # not an hour
    assert buckets.take("k", loose, 0.1) == 0.0


def test_refilled_buckets_are_forgotten_so_memory_stays_bounded() -> None:
    buckets = Buckets(max_keys=100, sweep_s=60)
    for n in range(50):
        buckets.take(n, PER_MINUTE, 0.0)
    assert len(buckets) == 50
    buckets.take("late", PER_MINUTE, 61.0)  # a sweep is due: every bucket from t=0 has refilled
    assert len(buckets) == 1
    for n in range(1000):  # more busy keys than max_keys: never more than max_keys held
        buckets.take(("busy", n), PER_MINUTE, 62.0)
        assert len(buckets) <= 100


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20/s:400", Limit(20, 400)),
        ("20/s", Limit(20, 20)),
        ("600/min", Limit(10, 600)),
        (" 3 / h : 5 ", Limit(3 / 3600, 5)),
        ("0.5/s:1", Limit(0.5, 1)),
        ("off", None),
        ("OFF", None),
        ("0", None),
    ],
)
def test_limit_specs(text: str, expected: Limit | None) -> None:
    assert parse_limit(text) == expected


@pytest.mark.parametrize("text", ["", "20", "20/day", "-1/s", "abc/s", "20/s:0", "0/s:10", "20/s:x", "1e9/s"])
def test_bad_limit_specs_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_limit(text)


def test_a_workspace_overrides_only_the_limits_it_names() -> None:
    limiter = RateLimiter(Limits(address=Limit(1, 1), site=Limit(100, 100), person=Limit(5, 5)))
    plain = workspace()
    assert limiter.for_workspace(plain) is limiter.limits
    own = workspace(person={"rate_per_s": 1, "burst": 2}, address={"rate_per_s": 9, "burst": 9})
    merged = limiter.for_workspace(own)
    assert merged.person == Limit(1, 2)
    assert merged.site == Limit(100, 100)
    assert merged.address == Limit(1, 1)  # not the workspace's to change
    assert limiter.for_workspace(own) is merged  # cached while the settings are the same object
    assert RateLimiter(limiter.limits, enabled=False).for_workspace(own) == Limits()


def test_a_refusal_is_counted_and_carries_a_retry_after() -> None:
    counter = mock.Mock()
    now = [0.0]
    limiter = RateLimiter(Limits(person=Limit(1 / 60, 1)), refused=counter, monotonic=lambda: now[0])
    limiter.check_device(workspace(), "ada")
    with pytest.raises(RateLimited) as refused:
        limiter.check_device(workspace(), "ada")
    assert refused.value.status == 429
    assert refused.value.headers == {"Retry-After": "60"}
    counter.labels.assert_called_once_with("device", "person")
    counter.labels.return_value.inc.assert_called_once_with()
    limiter.check_device(workspace(2), "ada")  # another workspace's ada
    now[0] = 60.0
    limiter.check_device(workspace(), "ada")


def test_retry_after_is_whole_seconds_and_at_least_one() -> None:
    limiter = RateLimiter(Limits(api_key=Limit(1000, 1)), monotonic=lambda: 0.0)
    limiter.check_api_key(workspace())
    with pytest.raises(RateLimited) as refused:
        limiter.check_api_key(workspace())
    assert refused.value.retry_after_s == 1 == math.ceil(refused.value.retry_after_s)


def _request(peer: str | None, *forwarded: str):  # type: ignore[no-untyped-def]
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        (peer, 4321) if name == "peername" and peer is not None else default
    )
    headers = [("X-Forwarded-For", value) for value in forwarded]
    return make_mocked_request("POST", "/v1/poll", headers=CIMultiDict(headers), transport=transport)


PROXIES = TrustedProxies(_networks("10.0.0.0/8, fd00::/8"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        # No proxies configured: the peer, whatever the header says.
        ("203.0.113.7", ("198.51.100.1",), TrustedProxies(()), "203.0.113.7"),
        # A peer that is not a trusted proxy: the header is the client's own claim, ignored.
        ("203.0.113.7", ("198.51.100.1",), PROXIES, "203.0.113.7"),
        # From a trusted proxy: the address it appended.
        ("10.0.0.2", ("198.51.100.1",), PROXIES, "198.51.100.1"),
        # What the client put in front of it is ignored; trusted hops are skipped.
        ("10.0.0.2", ("1.2.3.4, 198.51.100.1, 10.0.0.9",), PROXIES, "198.51.100.1"),
        ("10.0.0.2", ("1.2.3.4", "198.51.100.1"), PROXIES, "198.51.100.1"),  # several header lines
        # A trusted proxy without the header, or with garbage: the nearest address vouched for.
        ("10.0.0.2", (), PROXIES, "10.0.0.2"),
        ("10.0.0.2", ("not-an-address",), PROXIES, "10.0.0.2"),
        ("10.0.0.2", ("garbage, 10.0.0.3",), PROXIES, "10.0.0.3"),
        # IPv6 clients count per /64; IPv4-mapped ones as IPv4.
        ("2001:db8:1:2:3:4:5:6", (), PROXIES, "2001:db8:1:2::/64"),
        ("fd00::1", ("2001:db8:1:2::9",), PROXIES, "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", (), PROXIES, "203.0.113.7"),
        ("::ffff:10.0.0.2", ("198.51.100.1",), PROXIES, "198.51.100.1"),
    ],
)
def test_client_address(peer: str, forwarded: tuple[str, ...], trusted: TrustedProxies, expected: str) -> None:
    assert client_address(_request(peer, *forwarded), trusted) == expected


def test_a_peer_without_an_address_is_one_key() -> None:
    assert client_address(_request(None, "198.51.100.1"), PROXIES) == ""
