"""JSON encoding of API responses, with pre-encoded JSON spliced in as is.

Events are stored as the JSON text the client gets back, so a handler returns them wrapped in
:data:`RawJSON` (``orjson.Fragment``) and :func:`dumps` writes them verbatim instead of decoding and encoding
them again.
"""

from __future__ import annotations

from typing import Any

import orjson

RawJSON = orjson.Fragment
"""JSON text placed as is in a response: ``RawJSON("[1,2]")``."""

_OPTIONS = orjson.OPT_NON_STR_KEYS
_INT64 = (-(2 ** 63), 2 ** 64 - 1)


def _default(obj: Any) -> Any:
    return str(obj)


def _big_ints_as_fragments(value: Any) -> Any:
    """``value`` with integers beyond 64 bits (which orjson refuses) turned into exact JSON fragments."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and not _INT64[0] <= value <= _INT64[1]:
        return orjson.Fragment(str(value))
    if isinstance(value, dict):
        return {k: _big_ints_as_fragments(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_big_ints_as_fragments(v) for v in value]
    return value


def dumps(data: Any) -> bytes:
    """Compact JSON of ``data`` (NaN/Infinity as null, anything unknown as its string)."""
    try:
        return orjson.dumps(data, default=_default, option=_OPTIONS)
    except TypeError:
        return orjson.dumps(_big_ints_as_fragments(data), default=_default, option=_OPTIONS)
