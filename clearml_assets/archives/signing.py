"""Optional manifest signing: HMAC-SHA256 with a key from the environment (``CLEARML_ASSETS_ARCHIVE_KEY``).

``manifest.json`` lists every file of an export with its size and sha256, so a manifest whose signature
matches vouches for every byte of the export. When the key is set, every manifest the exporter writes is
signed, and a restore refuses an archive whose top manifest is unsigned, signed with another key or changed
after signing. The signature covers the whole manifest except ``signature`` itself and ``archive`` (the
archive file's own size and sha256, which cannot be inside the archive it describes).

The key never leaves the process: what is written is ``{"algorithm", "key_id", "hmac"}``, where ``key_id``
is an HMAC of a constant (it tells "another key" from "changed content" without revealing the key).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from typing import Any

from ..errors import ArchiveError, ClearMLConfigError

KEY_ENV = "CLEARML_ASSETS_ARCHIVE_KEY"
ALGORITHM = "HMAC-SHA256"
MIN_KEY_CHARS = 16
SIGNATURE_FIELD = "signature"
_UNSIGNED_FIELDS = frozenset({SIGNATURE_FIELD, "archive"})


def archive_key() -> bytes | None:
    """The signing key from the environment, or ``None`` when none is set.

    Raises:
        ClearMLConfigError: The key is set but shorter than :data:`MIN_KEY_CHARS` characters.
    """
    raw = os.environ.get(KEY_ENV, "")
    if not raw.strip():
        return None
    if len(raw) < MIN_KEY_CHARS:
        raise ClearMLConfigError(f"{KEY_ENV} is set but shorter than {MIN_KEY_CHARS} characters; use a random "
                                 "key, e.g. the output of: python -c 'import secrets; print(secrets.token_hex(32))'")
    return raw.encode("utf-8")


def key_id(key: bytes) -> str:
    """A short public name of ``key`` (an HMAC of a constant; the key cannot be read from it)."""
    return hmac.new(key, b"clearml-assets archive key id", hashlib.sha256).hexdigest()[:16]


def signed_bytes(manifest: dict[str, Any]) -> bytes:
    """The canonical bytes a manifest's signature covers (its JSON as written, keys sorted, compact)."""
    body = json.loads(json.dumps(manifest, default=str, allow_nan=False))
    body = {k: v for k, v in body.items() if k not in _UNSIGNED_FIELDS}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def sign(manifest: dict[str, Any], key: bytes) -> dict[str, str]:
    """The ``signature`` entry of ``manifest`` under ``key``."""
    return {"algorithm": ALGORITHM, "key_id": key_id(key),
            "hmac": hmac.new(key, signed_bytes(manifest), hashlib.sha256).hexdigest()}


def sign_in_place(manifest: dict[str, Any]) -> None:
    """Sign ``manifest`` with the environment's key (or drop a stale signature when no key is set)."""
    manifest.pop(SIGNATURE_FIELD, None)
    key = archive_key()
    if key is not None:
        manifest[SIGNATURE_FIELD] = sign(manifest, key)


def signature_problem(manifest: dict[str, Any], key: bytes) -> str | None:
    """What is wrong with ``manifest``'s signature under ``key`` (``None``: it is valid)."""
    signature = manifest.get(SIGNATURE_FIELD)
    if not isinstance(signature, dict):
        return f"it is not signed ({KEY_ENV} is set here, so only signed archives are accepted)"
    if signature.get("algorithm") != ALGORITHM:
        return f"its signature uses {str(signature.get('algorithm'))[:40]!r}, not {ALGORITHM}"
    if signature.get("key_id") != key_id(key):
        return (f"it was signed with another key (key id {str(signature.get('key_id'))[:16]!r}; the key set "
                f"here has key id {key_id(key)!r})")
    expected = hmac.new(key, signed_bytes(manifest), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, str(signature.get("hmac", ""))):
        return "its signature does not match its content: the manifest was changed after it was signed"
    return None


def is_signed_as_required(manifest: dict[str, Any]) -> bool:
    """Whether ``manifest`` is good under the environment's key (always, when no key is set)."""
    key = archive_key()
    return key is None or signature_problem(manifest, key) is None


def require_signature(manifest: dict[str, Any], where: str) -> None:
    """Refuse ``manifest`` (of the export ``where``) unless it is validly signed, when a key is set.

    Raises:
        ArchiveError: A key is set and the manifest is unsigned, signed with another key, or changed.
    """
    key = archive_key()
    if key is None:
        return
    problem = signature_problem(manifest, key)
    if problem:
        raise ArchiveError(f"{where} is refused: {problem}. Nothing was restored; restore only archives "
                           f"exported with the same {KEY_ENV}")
