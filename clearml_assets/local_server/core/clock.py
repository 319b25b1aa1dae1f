"""Timestamps as the real server renders them."""

from __future__ import annotations

from datetime import datetime, timezone


def now_iso() -> str:
    """The current UTC time as the real server renders datetimes (Mongo keeps milliseconds)."""
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000).isoformat(timespec="microseconds")
