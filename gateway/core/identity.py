"""Identity proof: a device shows `hex(HMAC-SHA256(identity_secret, user))` computed by the product's backend."""

from __future__ import annotations

import hashlib
import hmac

from storage import Workspace

from ..errors import ErrorCode, Forbidden

__all__ = ["check_identity", "user_hash"]


def user_hash(identity_secret: str, user: str) -> str:
    return hmac.new(identity_secret.encode(), user.encode(), hashlib.sha256).hexdigest()


def check_identity(workspace: Workspace, user: str, proof: str | None) -> None:
    """`off` ignores proofs; `optional` checks one when given; `required` demands one."""
    if workspace.identity_mode == "off":
        return
    if proof is None or proof == "":
        if workspace.identity_mode == "required":
            raise Forbidden(
                "this workspace requires `user_hash`: hex HMAC-SHA256 of the user with the identity secret",
                code=ErrorCode.IDENTITY_PROOF_REQUIRED,
            )
        return
    if not hmac.compare_digest(user_hash(workspace.identity_secret, user), proof.lower()):
        raise Forbidden("`user_hash` does not match this user", code=ErrorCode.IDENTITY_PROOF_FAILED)
