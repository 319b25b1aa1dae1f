"""ClearML datetimes: what the API returns (ISO 8601, naive meaning UTC) or a unix timestamp."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any


def parse_clearml_time(value: Any) -> datetime | None:
    """A ClearML datetime as an aware UTC datetime.

    Args:
        value: An ISO 8601 string (``Z``, an offset, or naive = UTC), or a unix timestamp in seconds or
            milliseconds.

    Returns:
        The aware datetime, or None when the value is absent or unparseable.
    """
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, timezone.utc)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
