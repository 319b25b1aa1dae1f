"""Credentials and JWT tokens of the local server.

Tokens carry the claims the ClearML SDK negotiates with (``api_version`` and ``server_version`` of the release the
server presents itself as, ``feature_set`` basic, ``env``, ``exp``) plus the identity whose ``company`` scopes every
document a key pair can see, and an id (``jti``) by which signing out revokes the token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import jwt

from .core import ApiError
from .core.versions import NEWEST, ServerRelease

TOKEN_LIFETIME_SEC = 30 * 24 * 3600


@dataclass(frozen=True)
class Credential:
    """One key pair and the company/user it acts as.

    ``auth_only``: the user exists for authentication only, as clearml-server's users that have credentials but
    no backend user record: it signs in and owns what it creates, but ``users.*`` do not list it.
    ``name``: the user's display name (default: its id).
    """

    access_key: str
    secret_key: str
    company: str = "local"
    user: str = "local-user"
    auth_only: bool = False
    name: str = ""


def generate_credential(company: str = "local", user: str = "local-user") -> Credential:
    """A fresh random key pair in the shape ClearML uses (uppercase key, long secret)."""
    key = "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(20))
    return Credential(key, secrets.token_urlsafe(36), company, user)


def load_or_create_credentials(data_dir: Path) -> list[Credential]:
    """Key pairs stored in ``data_dir/credentials.json`` (created, mode 0600, on first use)."""
    path = Path(data_dir) / "credentials.json"
    if path.exists():
        return [Credential(**c) for c in json.loads(path.read_text())]
    creds = [generate_credential()]
    write_credentials(path, creds)
    return creds


def write_credentials(path: Path, creds: list[Credential]) -> None:
    """Write key pairs readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump([asdict(c) for c in creds], fh)


def load_or_create_signing_key(data_dir: Path) -> str:
    """The HS256 signing key of this data directory (so tokens survive a restart)."""
    path = Path(data_dir) / "jwt.key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


def identity_proof(secret_key: str, nonce: str) -> str:
    """The answer a server holding ``secret_key`` gives to ``nonce`` (see :meth:`Authenticator.proof`)."""
    return hmac.new(secret_key.encode(), f"clearml-assets-local-server:{nonce}".encode(), hashlib.sha256).hexdigest()


class Authenticator:
    """Checks Basic credentials for ``auth.login`` and Bearer tokens for everything else.

    Args:
        credentials: The key pairs.
        signing_key: The HS256 key of the tokens.
        release: The clearml-server release the tokens name (``api_version``, ``server_version``).
        is_revoked: Whether a token id (``jti``) was revoked (signed out); revoked tokens are refused.
    """

    def __init__(self, credentials: list[Credential], signing_key: str, release: ServerRelease = NEWEST,
                 is_revoked: Callable[[str], bool] | None = None):
        self._by_key = {c.access_key: c for c in credentials}
        self._signing_key = signing_key
        self._release = release
        self._is_revoked = is_revoked
        self._decoy = secrets.token_hex(32)

    def login(self, authorization: str | None) -> dict:
        """Return ``{"token": ...}`` for valid Basic credentials, else raise 401."""
        cred = self._basic(authorization)
        now = int(time.time())
        claims = {
            "identity": {"company": cred.company, "user": cred.user, "role": "user",
                         "company_name": cred.company, "user_name": cred.name or cred.user,
                         "auth_only": cred.auth_only},
            "api_version": self._release.api_version,
            "server_version": self._release.version,
            "server_build": "local",
            "feature_set": "basic",
            "env": "local",
            "iat": now,
            "exp": now + TOKEN_LIFETIME_SEC,
            "jti": secrets.token_hex(16),
        }
        return {"token": jwt.encode(claims, self._signing_key, algorithm="HS256")}

    def proof(self, access_key: str, nonce: str) -> str:
        """HMAC-SHA256 of ``nonce`` under the secret of ``access_key``: proves this server holds that key pair
        to a client that holds it too, without the client sending the secret anywhere (an unknown key gets a
        proof under a random key, indistinguishable to whoever asks)."""
        cred = self._by_key.get(access_key)
        secret = cred.secret_key if cred is not None else self._decoy
        return identity_proof(secret, nonce)

    def identity(self, authorization: str | None) -> dict:
        """The identity claim of a valid Bearer token (Basic is accepted too), else 401.

        A token's identity also names the token (``token_id``, ``token_exp``), so signing out can revoke it.
        """
        if not authorization:
            raise ApiError(401, 20, "Unauthorized (missing credentials)")
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "basic":
            cred = self._basic(authorization)
            return {"company": cred.company, "user": cred.user, "auth_only": cred.auth_only}
        if scheme.lower() != "bearer":
            raise ApiError(401, 10, "Unauthorized (bad authentication header type)")
        try:
            claims = jwt.decode(value.strip(), self._signing_key, algorithms=["HS256"])
        except jwt.ExpiredSignatureError:
            raise ApiError(401, 30, "Invalid token (token expired)") from None
        except jwt.PyJWTError:
            raise ApiError(401, 30, "Invalid token") from None
        identity = claims.get("identity") or {}
        if identity.get("company") not in {c.company for c in self._by_key.values()}:
            raise ApiError(401, 30, "Invalid token")
        token_id = claims.get("jti")
        if token_id and self._is_revoked is not None and self._is_revoked(token_id):
            raise ApiError(401, 30, "Invalid token (revoked: signed out)")
        return {**identity, "token_id": token_id, "token_exp": claims.get("exp")}

    def _basic(self, authorization: str | None) -> Credential:
        if not authorization or not authorization.lower().startswith("basic "):
            raise ApiError(401, 20, "Unauthorized (missing credentials)")
        try:
            key, _, secret = base64.b64decode(authorization[6:].strip()).decode().partition(":")
        except Exception:
            raise ApiError(401, 21, "Unauthorized (malformed credentials)") from None
        cred = self._by_key.get(key)
        if cred is None or not secrets.compare_digest(cred.secret_key, secret):
            raise ApiError(401, 22, "Unauthorized (invalid credentials)")
        return cred


VIEW_SESSION_COOKIE = "clearml_assets_view"
VIEW_SESSION_SEC = 12 * 3600


class ViewSessions:
    """Sessions of the read-only web view, kept in the server's memory only.

    Signing in to the web view makes a random session id (the HttpOnly, SameSite cookie) standing for the
    identity of the key pair; it is no API token: the API refuses it, only web-view pages and fileserver
    downloads accept it, it expires after ``lifetime`` seconds, and signing out deletes it here (a restart of the
    server signs every browser out).

    Args:
        lifetime: Seconds a session lasts from sign-in.
        limit: Sessions kept at most (the oldest go first).
    """

    def __init__(self, lifetime: int = VIEW_SESSION_SEC, limit: int = 10_000) -> None:
        self.lifetime = lifetime
        self.limit = limit
        self._sessions: dict[str, tuple[float, dict]] = {}
        self._lock = threading.Lock()

    def create(self, identity: dict) -> str:
        """A new session for ``identity``; returns its id."""
        session_id = secrets.token_urlsafe(32)
        with self._lock:
            while len(self._sessions) >= self.limit:
                self._sessions.pop(next(iter(self._sessions)))
            self._sessions[session_id] = (time.monotonic() + self.lifetime, dict(identity))
        return session_id

    def identity(self, session_id: str | None) -> dict | None:
        """The identity of a live session (None: unknown, expired or signed out)."""
        if not session_id:
            return None
        with self._lock:
            found = self._sessions.get(session_id)
            if found is None or found[0] < time.monotonic():
                self._sessions.pop(session_id, None)
                return None
            return dict(found[1])

    def revoke(self, session_id: str | None) -> None:
        """End a session (signing out)."""
        with self._lock:
            self._sessions.pop(session_id or "", None)
