"""Token revocation (clearml-server ``service_repo/auth``'s ``revoke_auth_token``/``is_token_revoked``): signing
out of the web app revokes its session token on the server, so it stops working everywhere."""

from __future__ import annotations

import time
from typing import Any

REVOKED = "revoked_tokens"
"""The store collection of revoked token ids (``jti``), each kept until its token would have expired."""


def revoke_token(store: Any, token_id: str | None, expires: int | None) -> None:
    """Revoke the token ``token_id`` (its ``jti`` claim) until ``expires`` (its ``exp``); expired entries go."""
    if not token_id:
        return
    now = int(time.time())
    for doc in store.all(REVOKED):
        if int(doc.get("exp") or 0) < now:
            store.delete(REVOKED, doc["id"])
    store.save(REVOKED, {"id": token_id, "exp": int(expires or now)})


def is_revoked(store: Any, token_id: str | None) -> bool:
    """Whether the token ``token_id`` was revoked."""
    return bool(token_id) and store.get(REVOKED, token_id) is not None
