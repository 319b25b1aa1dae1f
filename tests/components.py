"""What the fixtures that start system components (PostgreSQL, SeaweedFS, Azurite) share."""

from __future__ import annotations

import os
import socket
from typing import Any, Callable

import pytest


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def missing_binary(find: Callable[[], Any]) -> str | None:
    """``find()``'s RuntimeError message (what is missing and how to install it), or None when it is there."""
    try:
        find()
    except RuntimeError as exc:
        return str(exc)
    return None


def require_or_skip(missing: str | None) -> None:
    """Skip a test whose system component is missing, except in CI (``CI=true``), where it must run."""
    if missing:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{missing} (CI must provide it: see .ci/run)", pytrace=False)
        pytest.skip(missing)
