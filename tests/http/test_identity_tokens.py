"""Identity proof with signed user tokens (JWT HS256), the static hash beside them, and rotating
API keys and identity secrets with a grace period. Time moves with the `clock` fixture."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timedelta
from typing import Any

import jwt
import orjson
import pytest

import storage
from gateway.core.clock import FixedClock
from tests.helpers import Api, Reply

DEVICE_ROUTES = ("/v1/poll", "/v1/events", "/v1/identify", "/v1/track")


def token(api: Api, clock: FixedClock, sub: str = "ada", *, lifetime_s: float = 600, secret: str | None = None,
          kid: str | None = "current", **claims: Any) -> str:
    """A user token as the product's backend signs it, expiring `lifetime_s` after the clock's now."""
    now = clock.now().timestamp()
    payload: dict[str, Any] = {"sub": sub, "exp": int(now + lifetime_s), "iat": int(now), **claims}
    headers = {"kid": api.workspace.identity_secrets[0].kid} if kid == "current" else ({"kid": kid} if kid else None)
    return jwt.encode(payload, secret or api.workspace.identity_secret, algorithm="HS256", headers=headers)


def body_for(route: str, api: Api, user: str, **proof: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"site_id": api.site_id, "user": user, "device_id": "phone", **proof}
    if route == "/v1/events":
        base["events"] = [{"message_id": "00000000-0000-0000-0000-000000000000", "type": "shown"}]
    elif route == "/v1/identify":
        base["attributes"] = {"plan_name": "pro"}
    elif route == "/v1/track":
        base["name"] = "opened_app"
    return base


async def device(api: Api, route: str, user: str = "ada", **proof: Any) -> Reply:
    return await api.request("POST", route, json=body_for(route, api, user, **proof), auth=False)


@pytest.fixture
async def required(api: Api) -> Api:
    reply = await api.patch_workspace(identity_mode="required")
    assert reply.status == 200, reply
    return api


# Tokens


@pytest.mark.parametrize("route", DEVICE_ROUTES)
async def test_a_valid_token_is_proof_on_every_device_route(required: Api, clock: FixedClock, route: str) -> None:
    refused = await device(required, route)
    assert (refused.status, refused.error_code) == (403, "identity_proof_required")
    accepted = await device(required, route, user_token=token(required, clock))
    assert accepted.status == 200, accepted


async def test_a_token_proves_its_sub_only(required: Api, clock: FixedClock) -> None:
    sent = await required.send("ada")
    stolen = await required.poll("ada", "mallory", user_token=token(required, clock, "mallory"))
    assert (stolen.status, stolen.error_code) == (403, "identity_proof_failed")
    got = await required.poll("ada", "phone", user_token=token(required, clock, "ada"))
    assert got.message_ids == [sent.body["id"]]


async def test_an_email_is_proven_by_the_email_claim(required: Api, clock: FixedClock) -> None:
    await required.identify("ada", email="ada@example.com")
    sent = await required.send({"email": "ada@example.com"})
    with_email = token(required, clock, "ada", email="Ada@Example.com")
    got = await required.poll("ada@example.com", "phone", user_token=with_email)
    assert got.message_ids == [sent.body["id"]]
    without = await required.poll("ada@example.com", "phone", user_token=token(required, clock, "ada"))
    assert (without.status, without.error_code) == (403, "identity_proof_failed")
    other = await required.poll("ada@example.com", "phone",
                                user_token=token(required, clock, "bob", email="bob@example.com"))
    assert (other.status, other.error_code) == (403, "identity_proof_failed")


async def test_an_expired_token_is_refused_with_its_own_code(required: Api, clock: FixedClock) -> None:
    signed = token(required, clock, lifetime_s=300)
    assert (await required.poll("ada", "phone", user_token=signed)).status == 200
    clock.advance(seconds=300 + 31)  # past exp and the 30 s leeway
    expired = await required.poll("ada", "phone", user_token=signed)
    assert (expired.status, expired.error_code) == (403, "identity_token_expired")
    # A fresh token works again; so would the static hash, but the token decides when both come.
    assert (await required.poll("ada", "phone", user_token=token(required, clock))).status == 200
    both = await required.poll("ada", "phone", user_token=signed, user_hash=required.hash_for("ada"))
    assert both.error_code == "identity_token_expired"


async def test_a_token_living_longer_than_the_workspace_allows_is_refused(required: Api, clock: FixedClock) -> None:
    day = 86400
    assert (await required.poll("ada", "phone", user_token=token(required, clock, lifetime_s=day))).status == 200
    too_long = await required.poll("ada", "phone", user_token=token(required, clock, lifetime_s=2 * day))
    assert (too_long.status, too_long.error_code) == (403, "identity_token_lifetime_too_long")
    # exp close to now, but iat says it was minted to live two days.
    now = int(clock.now().timestamp())
    old_iat = token(required, clock, iat=now - 2 * day + 60, lifetime_s=60)
    refused = await required.poll("ada", "phone", user_token=old_iat)
    assert refused.error_code == "identity_token_lifetime_too_long"

    shorter = await required.patch_workspace(max_token_lifetime_s=3600)
    assert (shorter.status, shorter.body["max_token_lifetime_s"]) == (200, 3600)
    refused = await required.poll("ada", "phone", user_token=token(required, clock, lifetime_s=7200))
    assert refused.error_code == "identity_token_lifetime_too_long"
    assert (await required.poll("ada", "phone", user_token=token(required, clock, lifetime_s=3000))).status == 200


@pytest.mark.parametrize("value", [0, 59, 30 * 86400 + 1, "3600", None, True])
async def test_max_token_lifetime_must_be_a_minute_to_30_days(api: Api, value: Any) -> None:
    reply = await api.patch_workspace(max_token_lifetime_s=value)
    if value is None:
        assert reply.status == 200, reply  # null leaves it as it is
        assert reply.body["max_token_lifetime_s"] == 86400
    else:
        assert (reply.status, reply.error_code) == (422, "invalid_fields"), reply


async def test_a_token_signed_with_another_secret_is_refused(
    required: Api, other_api: Api, clock: FixedClock
) -> None:
    wrong = token(required, clock, secret="f" * 64)
    assert (await required.poll("ada", "phone", user_token=wrong)).error_code == "identity_token_invalid"
    no_kid = token(required, clock, secret="f" * 64, kid=None)
    assert (await required.poll("ada", "phone", user_token=no_kid)).error_code == "identity_token_invalid"
    # Another workspace's secret and kid prove nothing here.
    theirs = token(other_api, clock)
    assert (await required.poll("ada", "phone", user_token=theirs)).error_code == "identity_token_invalid"
    # Without a kid, the workspace's own secret is tried.
    assert (await required.poll("ada", "phone", user_token=token(required, clock, kid=None))).status == 200


def _b64(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], payload: dict[str, Any], signature: str = "") -> str:
    return f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(payload))}.{signature}"


GARBAGE = {
    "empty-parts": "..",
    "one-part": "abc",
    "not-base64": "!!!.@@@.###",
    "non-ascii": "é.é.é",
    "emoji": "🙂🙂🙂",
    "nul-free-binaryish": "\x01\x02\x03.\x04.\x05",
    "header-not-json": _b64(b"not json") + "." + _b64(b"{}") + ".sig",
    "header-a-list": _b64(b"[1,2]") + "." + _b64(b"{}") + ".sig",
    "alg-none": _unsigned({"alg": "none", "typ": "JWT"}, {"sub": "ada", "exp": 4102444800}),
    "alg-hs512": jwt.encode({"sub": "ada", "exp": 4102444800}, "x" * 64, algorithm="HS512"),
    "kid-a-number": _unsigned({"alg": "HS256", "kid": 7}, {"sub": "ada", "exp": 4102444800}, "c2ln"),
    "kid-unknown": _unsigned({"alg": "HS256", "kid": "kid_nope"}, {"sub": "ada", "exp": 4102444800}, "c2ln"),
    "payload-not-json": _b64(b'{"alg":"HS256"}') + "." + _b64(b"\xff\xfe") + ".c2ln",
    "longest-accepted": "a." * 2047 + "b",
}


@pytest.mark.parametrize("garbage", list(GARBAGE.values()), ids=list(GARBAGE))
@pytest.mark.parametrize("mode", ["optional", "required"])
async def test_no_token_string_is_a_500(api: Api, mode: str, garbage: str) -> None:
    await api.patch_workspace(identity_mode=mode)
    for route in DEVICE_ROUTES:
        reply = await device(api, route, user_token=garbage)
        assert (reply.status, reply.error_code) == (403, "identity_token_invalid"), (route, reply)


async def test_a_huge_token_is_an_invalid_field(required: Api) -> None:
    reply = await required.poll("ada", "phone", user_token="a" * 4097)
    assert (reply.status, reply.error_code) == (422, "invalid_fields")
    wrong_type = await required.poll("ada", "phone", user_token=123)
    assert (wrong_type.status, wrong_type.error_code) == (422, "invalid_fields")


@pytest.mark.parametrize(
    ("claims", "code"),
    [
        ({"exp": None}, "identity_token_invalid"),
        ({"exp": "soon"}, "identity_token_invalid"),
        ({"exp": True}, "identity_token_invalid"),
        ({"sub": None}, "identity_token_invalid"),
        ({"sub": 42}, "identity_token_invalid"),
        ({"email": 42}, "identity_token_invalid"),
        ({"nbf": 4102444800}, "identity_token_invalid"),
        ({"iat": "yesterday"}, "identity_token_invalid"),
    ],
    ids=["no-exp", "exp-text", "exp-bool", "no-sub", "sub-number", "email-number", "nbf-future", "iat-text"],
)
async def test_claims_of_the_wrong_shape_are_refused(
    required: Api, clock: FixedClock, claims: dict[str, Any], code: str
) -> None:
    now = int(clock.now().timestamp())
    payload = {"sub": "ada", "exp": now + 60, "iat": now, **claims}
    payload = {k: v for k, v in payload.items() if v is not None}
    signed = jwt.encode(payload, required.workspace.identity_secret, algorithm="HS256")
    reply = await required.poll("ada", "phone", user_token=signed)
    assert (reply.status, reply.error_code) == (403, code), reply


async def test_a_nan_exp_is_refused(required: Api) -> None:
    """Python's json reads NaN; a NaN compares false with everything, so it must be refused outright."""
    header = _b64(b'{"alg":"HS256","typ":"JWT"}')
    payload = _b64(b'{"sub":"ada","exp":NaN}')
    signature = hmac.new(required.workspace.identity_secret.encode(), f"{header}.{payload}".encode(),
                         hashlib.sha256).digest()
    reply = await required.poll("ada", "phone", user_token=f"{header}.{payload}.{_b64(signature)}")
    assert (reply.status, reply.error_code) == (403, "identity_token_invalid")


async def test_off_ignores_tokens(api: Api) -> None:
    assert (await api.poll("ada", "phone", user_token="garbage")).status == 200


async def test_optional_checks_a_token_when_one_is_given(api: Api, clock: FixedClock) -> None:
    await api.patch_workspace(identity_mode="optional")
    assert (await api.poll("ada", "phone")).status == 200
    assert (await api.poll("ada", "phone", user_token=token(api, clock))).status == 200
    wrong = await api.poll("ada", "phone", user_token=token(api, clock, "bob"))
    assert wrong.error_code == "identity_proof_failed"


# The static hash


@pytest.mark.parametrize("proof", ["é", "é" * 64, "zz" * 32, "not hex", "🙂", "0" * 64, "0" * 128])
@pytest.mark.parametrize("mode", ["optional", "required"])
async def test_a_wrong_or_non_hex_hash_is_a_403(api: Api, mode: str, proof: str) -> None:
    await api.patch_workspace(identity_mode=mode)
    for route in DEVICE_ROUTES:
        reply = await device(api, route, user_hash=proof)
        assert (reply.status, reply.error_code) == (403, "identity_proof_failed"), (route, reply)


async def test_the_hash_can_be_turned_off_leaving_tokens_only(required: Api, clock: FixedClock) -> None:
    assert (await required.poll("ada", "phone", user_hash=required.hash_for("ada"))).status == 200
    off = await required.patch_workspace(identity_hash_allowed=False)
    assert (off.status, off.body["identity_hash_allowed"]) == (200, False)
    assert (await required.request("GET", "/v1/workspace")).body["identity_hash_allowed"] is False

    for route in DEVICE_ROUTES:
        refused = await device(required, route, user_hash=required.hash_for("ada"))
        assert (refused.status, refused.error_code) == (403, "identity_hash_not_allowed"), (route, refused)
        assert (await device(required, route, user_token=token(required, clock))).status == 200
    missing = await required.poll("ada", "phone")
    assert missing.error_code == "identity_proof_required" and "user_hash" not in missing.body["error"]["message"]

    bad = await required.patch_workspace(identity_hash_allowed="no")
    assert (bad.status, bad.error_code) == (422, "invalid_fields")


# Rotation of identity secrets


async def rotate_secret(api: Api, grace_s: Any) -> Reply:
    return await api.request("POST", "/v1/workspace/identity-secrets", json={"grace_s": grace_s})


async def rotate_key(api: Api, grace_s: Any) -> Reply:
    return await api.request("POST", "/v1/workspace/api-keys", json={"grace_s": grace_s})


async def test_a_rotated_secret_keeps_verifying_for_its_grace(required: Api, clock: FixedClock) -> None:
    old_kid = required.workspace.identity_secrets[0].kid
    old_token = token(required, clock, lifetime_s=3600)
    old_hash = required.hash_for("ada")

    rotated = await rotate_secret(required, 600)
    assert rotated.status == 201, rotated
    new_kid, new_secret = rotated.body["kid"], rotated.body["identity_secret"]
    assert new_kid != old_kid and new_secret != required.workspace.identity_secret
    ends = clock.now() + timedelta(seconds=600)
    listed = {s["kid"]: s for s in rotated.body["identity_secrets"]}
    assert set(listed) == {old_kid, new_kid}
    assert datetime.fromisoformat(listed[old_kid]["expires_at"]) == ends and listed[new_kid]["expires_at"] is None
    read = (await required.request("GET", "/v1/workspace")).body
    assert {s["kid"] for s in read["identity_secrets"]} == {old_kid, new_kid}
    assert new_secret not in str(read) and required.workspace.identity_secret not in str(read)

    new_token = jwt.encode({"sub": "ada", "exp": int(clock.now().timestamp()) + 3600}, new_secret,
                           algorithm="HS256", headers={"kid": new_kid})
    # During the grace: tokens of both secrets; the static hash moves to the new secret at once.
    assert (await required.poll("ada", "phone", user_token=old_token)).status == 200
    assert (await required.poll("ada", "phone", user_token=new_token)).status == 200
    assert (await required.poll("ada", "phone", user_hash=old_hash)).error_code == "identity_proof_failed"
    new_hash = hmac.new(new_secret.encode(), b"ada", hashlib.sha256).hexdigest()
    assert (await required.poll("ada", "phone", user_hash=new_hash)).status == 200

    clock.advance(seconds=601)
    gone = await required.poll("ada", "phone", user_token=old_token)
    assert (gone.status, gone.error_code) == (403, "identity_token_invalid")
    assert old_kid in gone.body["error"]["message"]
    assert (await required.poll("ada", "phone", user_token=new_token)).status == 200
    read = (await required.request("GET", "/v1/workspace")).body
    assert [s["kid"] for s in read["identity_secrets"]] == [new_kid]


async def test_a_secret_rotated_without_grace_stops_at_once(required: Api, clock: FixedClock) -> None:
    old_token = token(required, clock)
    assert (await rotate_secret(required, 0)).status == 201
    assert (await required.poll("ada", "phone", user_token=old_token)).error_code == "identity_token_invalid"


# Rotation of API keys


async def test_a_rotated_api_key_keeps_working_for_its_grace(api: Api, clock: FixedClock) -> None:
    rotated = await rotate_key(api, 120)
    assert rotated.status == 201, rotated
    new_key = rotated.body["api_key"]
    assert new_key.startswith("msk_") and new_key != api.api_key
    assert rotated.headers["Cache-Control"] == "no-store"
    keys = rotated.body["api_keys"]
    assert len(keys) == 2 and keys[1]["id"] == rotated.body["id"] and keys[1]["expires_at"] is None
    assert datetime.fromisoformat(keys[0]["expires_at"]) == clock.now() + timedelta(seconds=120)

    new = Api(api.client, api.credentials)
    new.api_key = new_key
    for each in (api, new):
        assert (await each.request("GET", "/v1/workspace")).status == 200
    read = (await new.request("GET", "/v1/workspace")).body
    assert [k["id"] for k in read["api_keys"]] == [k["id"] for k in keys]
    assert new_key not in str(read)

    # The old key is cached in this process; it still stops at its instant.
    clock.advance(seconds=121)
    refused = await api.request("GET", "/v1/workspace")
    assert (refused.status, refused.error_code) == (401, "unauthorized")
    assert (await new.request("GET", "/v1/workspace")).status == 200
    assert len((await new.request("GET", "/v1/workspace")).body["api_keys"]) == 1


async def test_rotating_again_shortens_no_grace_it_would_lengthen(api: Api, clock: FixedClock) -> None:
    first = (await rotate_key(api, 60)).body
    second = Api(api.client, api.credentials)
    second.api_key = first["api_key"]
    again = await rotate_key(second, 3600)
    assert again.status == 201, again
    ends = {k["id"]: k["expires_at"] for k in again.body["api_keys"]}
    original = min(ends)
    assert datetime.fromisoformat(ends[original]) == clock.now() + timedelta(seconds=60), "not lengthened"
    assert datetime.fromisoformat(ends[first["id"]]) == clock.now() + timedelta(seconds=3600)


@pytest.mark.parametrize("path", ["/v1/workspace/api-keys", "/v1/workspace/identity-secrets"])
@pytest.mark.parametrize(
    "body", [{}, {"grace_s": -1}, {"grace_s": 30 * 86400 + 1}, {"grace_s": "60"}, {"grace_s": 1.5},
             {"grace_s": 60, "extra": 1}, [60]],
    ids=["missing", "negative", "too-long", "text", "float", "unknown-field", "a-list"],
)
async def test_rotation_refuses_bad_bodies(api: Api, path: str, body: Any) -> None:
    reply = await api.request("POST", path, json=body)
    assert (reply.status, reply.error_code) == (422, "invalid_fields"), reply
    assert len((await api.request("GET", "/v1/workspace")).body["api_keys"]) == 1


@pytest.mark.parametrize("path", ["/v1/workspace/api-keys", "/v1/workspace/identity-secrets"])
async def test_rotation_needs_the_server_api_key(api: Api, other_api: Api, path: str) -> None:
    anonymous = await api.request("POST", path, json={"grace_s": 0}, auth=False)
    assert (anonymous.status, anonymous.error_code) == (401, "unauthorized")
    empty = await api.request("POST", path, data=b"")
    assert (empty.status, empty.error_code) == (400, "empty_body")
    # One workspace's rotation leaves the other's credentials alone.
    assert (await api.request("POST", path, json={"grace_s": 0})).status == 201
    assert (await other_api.request("GET", "/v1/workspace")).status == 200


# --- safe by default ------------------------------------------------------------------------------


async def test_a_new_workspace_requires_identity_proof(api: Api, pool: Any) -> None:
    """A workspace made the way operators make them takes no poll on someone's bare id."""
    created = await storage.create_workspace(pool, "made-by-default")
    assert created.workspace.identity_mode == "required"
    fresh = Api(api.client, created)
    refused = await fresh.request(
        "POST", "/v1/poll", json={"site_id": fresh.site_id, "user": "ada", "device_id": "d"}, auth=False
    )
    assert (refused.status, refused.error_code) == (403, "identity_proof_required")
    setup = await fresh.request("GET", "/v1/workspace/setup")
    assert setup.body["identity_mode"] == "required" and "identity_warning" not in setup.body
