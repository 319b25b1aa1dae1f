"""Object ids in the real server's format."""

from __future__ import annotations

import uuid
from typing import Any


def new_id() -> str:
    """A new object id in the real server's format (32 hex digits)."""
    return uuid.uuid4().hex


def ids_of(value: Any) -> list[str]:
    """A field that may be one id or a list of ids, as a list."""
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]
