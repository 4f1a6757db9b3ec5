"""Identity proof: a device shows who it polls as, with a signed user token or a static `user_hash`.

Rules, and why:
- A signed user token (JWT, HS256 only) is the preferred proof: it expires, so a leaked one stops
  working on its own. Its header's `kid` names the workspace secret that signed it; a token
  without `kid` may be signed by any secret the workspace still accepts (rotation in progress).
- The static `user_hash = hex(HMAC-SHA256(identity_secret, user))` never expires; a workspace may
  refuse it (`identity_hash_allowed = false`). It is checked against the newest secret only.
- When a device sends both, the token decides: a device whose token ran out must learn so
  (`identity_token_expired`) and fetch a new one, rather than fall back to a proof that never does.
- Time is an input (`now`), like everywhere in the core: PyJWT's own clock checks are off.
- No input ends in a 500: anything PyJWT cannot parse is `identity_token_invalid`.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from datetime import UTC, datetime
from typing import Any

import jwt

from storage import Workspace

from ..errors import ErrorCode, Forbidden

__all__ = ["OFF_WARNING", "check_identity", "identity_warning", "user_hash"]

OFF_WARNING = (
    "identity proof is off: anyone who knows a person's id or email can poll as them and take their "
    "messages (the first device wins, so the real person never sees them). For demos only: set "
    "`identity_mode` to `required` (PATCH /v1/workspace) before real people use this workspace."
)
OPTIONAL_WARNING = (
    "identity proof is optional: a device that sends no proof can still poll as anyone whose id or "
    "email it knows, and take their messages. Set `identity_mode` to `required` once every app sends proof."
)

# Leeway for clocks a little apart (the backend's that sets iat/nbf, ours that checks exp).
_LEEWAY_S = 30


def identity_warning(identity_mode: str) -> str | None:
    """What a mode below `required` lets anyone do, in words for the people who set it up."""
    return {"off": OFF_WARNING, "optional": OPTIONAL_WARNING}.get(identity_mode)


def user_hash(identity_secret: str, user: str) -> str:
    return hmac.new(identity_secret.encode(), user.encode(), hashlib.sha256).hexdigest()


def check_identity(
    workspace: Workspace, user: str, proof: str | None, token: str | None = None, *, now: datetime | None = None,
) -> None:
    """`off` ignores proofs; `optional` checks one when given; `required` demands one."""
    if workspace.identity_mode == "off":
        return
    at = now or datetime.now(UTC)
    if token:
        _check_token(workspace, user, token, at)
        return
    if not proof:
        if workspace.identity_mode == "required":
            raise Forbidden(
                "this workspace requires identity proof: `user_token` (a JWT signed with the identity secret)"
                + (" or `user_hash` (hex HMAC-SHA256 of the user)" if workspace.identity_hash_allowed else ""),
                code=ErrorCode.IDENTITY_PROOF_REQUIRED,
            )
        return
    if not workspace.identity_hash_allowed:
        raise Forbidden(
            "this workspace accepts only signed user tokens: send `user_token` instead of `user_hash`",
            code=ErrorCode.IDENTITY_HASH_NOT_ALLOWED,
        )
    # Compared as bytes: compare_digest refuses non-ASCII str, and any string a device sends must
    # end in a 403, not a 500.
    expected = user_hash(workspace.identity_secret, user).encode()
    if not hmac.compare_digest(expected, proof.lower().encode()):
        raise Forbidden("`user_hash` does not match this user", code=ErrorCode.IDENTITY_PROOF_FAILED)


def _invalid(why: str) -> Forbidden:
    return Forbidden(f"`user_token` is not valid: {why}", code=ErrorCode.IDENTITY_TOKEN_INVALID)


def _check_token(workspace: Workspace, user: str, token: str, now: datetime) -> None:
    claims = _verified_claims(workspace, token, now)
    exp = claims.get("exp")
    iat = claims.get("iat")
    nbf = claims.get("nbf")
    for name, value in (("exp", exp), ("iat", iat), ("nbf", nbf)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
        ):
            raise _invalid(f"`{name}` must be a number of seconds since the epoch")
    if exp is None:
        raise _invalid("the `exp` claim is required")
    now_s = now.timestamp()
    if exp <= now_s - _LEEWAY_S:
        raise Forbidden(
            "`user_token` has expired: ask your backend for a fresh one",
            code=ErrorCode.IDENTITY_TOKEN_EXPIRED,
        )
    if nbf is not None and nbf > now_s + _LEEWAY_S:
        raise _invalid("it is not valid yet (`nbf` is in the future)")
    longest = workspace.max_token_lifetime_s
    if exp - now_s > longest + _LEEWAY_S or (iat is not None and exp - iat > longest):
        raise Forbidden(
            f"`user_token` lives too long: this workspace accepts tokens that expire within {longest} s "
            "(`max_token_lifetime_s`)",
            code=ErrorCode.IDENTITY_TOKEN_LIFETIME_TOO_LONG,
        )
    sub = claims.get("sub")
    email = claims.get("email")
    if not isinstance(sub, str) or not sub:
        raise _invalid("the `sub` claim (the person's id) is required, as a string")
    if email is not None and not isinstance(email, str):
        raise _invalid("the `email` claim must be a string")
    if user == sub or ("@" in user and email is not None and user.lower() == email.lower()):
        return
    raise Forbidden(
        "`user_token` proves another person: its `sub` (or `email`) must equal `user`",
        code=ErrorCode.IDENTITY_PROOF_FAILED,
    )


def _verified_claims(workspace: Workspace, token: str, now: datetime) -> dict[str, Any]:
    """The claims of a token signed by a secret the workspace accepts at `now`."""
    try:
        header = jwt.get_unverified_header(token)
    except (jwt.PyJWTError, ValueError, TypeError, UnicodeError):
        raise _invalid("it is not a JWT (three base64url parts separated by dots)") from None
    if header.get("alg") != "HS256":
        raise _invalid("only HS256 is accepted")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise _invalid("the header's `kid` must be a string")
    candidates = [s for s in workspace.identity_secrets if s.active(now) and (kid is None or s.kid == kid)]
    if not candidates:
        if kid is None:
            raise _invalid("this workspace has no active identity secret")
        raise _invalid(f"no active identity secret has kid {kid!r} (rotated out, or another workspace's)")
    for secret in candidates:
        try:
            claims = jwt.decode(
                token,
                secret.secret,
                algorithms=["HS256"],
                # Time is checked by the caller against `now`; audience is not used.
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False, "verify_aud": False},
            )
        except jwt.InvalidSignatureError:
            continue
        except (jwt.PyJWTError, ValueError, TypeError, UnicodeError):
            raise _invalid("it could not be decoded") from None
        if not isinstance(claims, dict):
            raise _invalid("its payload must be a JSON object")
        return claims
    raise _invalid("the signature does not match the workspace's identity secret")
