"""Limits on what an archive inflates: compressed plots, and archives unpacked to disk.

A plot the server stored compressed (``plot_data``) or an archive handed to restore is input someone else
made: a 272 KB ``plot_data`` can inflate to 200 MB, a 200 KB zip to 200 MB on disk. Everything here is
inflated as a stream that stops at its limit, and an archive's own index (member sizes) is checked against
its size before anything is written.
"""

from __future__ import annotations

import base64
import binascii
import os
import zlib

from ..errors import ClearMLConfigError

#: Most bytes one compressed plot may inflate to (``CLEARML_ASSETS_MAX_PLOT_BYTES`` overrides it).
DEFAULT_MAX_PLOT_BYTES = 64 << 20
MAX_PLOT_ENV = "CLEARML_ASSETS_MAX_PLOT_BYTES"
#: An archive may unpack to at most this many times its own size (``CLEARML_ASSETS_UNPACK_MAX_RATIO``)...
DEFAULT_UNPACK_MAX_RATIO = 200
UNPACK_RATIO_ENV = "CLEARML_ASSETS_UNPACK_MAX_RATIO"
#: ...once it unpacks to more than this: small archives are never refused for their ratio.
UNPACK_RATIO_FLOOR = 32 << 20
#: What each member costs on disk besides its bytes (an inode and a block): a million empty files count.
MEMBER_OVERHEAD = 4096
_CHUNK = 1 << 20


class InflateError(ValueError):
    """Compressed data that is corrupt, or inflates past its limit."""


def _positive_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ClearMLConfigError(f"{name}={raw!r} is not a positive whole number; unset it for the default "
                                 f"({default})")
    return value


def max_plot_bytes() -> int:
    """The most bytes a compressed plot may inflate to (environment, else the default)."""
    return _positive_int(MAX_PLOT_ENV, DEFAULT_MAX_PLOT_BYTES)


def max_record_chars() -> int:
    """The longest line a restore reads from an archive's event files: room for the largest plot (a plot's
    text is escaped once more inside its JSON line)."""
    return 4 * max_plot_bytes()


def unpack_max_ratio() -> int:
    """How many times its own size an archive may unpack to (environment, else the default)."""
    return _positive_int(UNPACK_RATIO_ENV, DEFAULT_UNPACK_MAX_RATIO)


def inflate(data: bytes, limit: int) -> bytearray:
    """``data`` (a zlib stream) inflated a chunk at a time, never holding more than ``limit`` plus one chunk.

    Raises:
        InflateError: The stream is corrupt or truncated, or inflates to more than ``limit`` bytes.
    """
    inflater, out, tail = zlib.decompressobj(), bytearray(), data
    try:
        while not inflater.eof:
            chunk = inflater.decompress(tail, _CHUNK)
            tail = inflater.unconsumed_tail
            if not chunk and not tail:
                break
            out += chunk
            if len(out) > limit:
                raise InflateError(f"it inflates to more than {limit} bytes (the limit, {MAX_PLOT_ENV})")
    except zlib.error as exc:
        raise InflateError(f"the compressed data is corrupt ({exc})") from None
    if not inflater.eof:
        raise InflateError("the compressed data is truncated")
    return out


def inflate_plot_data(plot_data: str | bytes, limit: int | None = None) -> str:
    """A plot's ``plot_data`` (base64 of zlib, as clearml-server stores plots) back to its ``plot_str``.

    Raises:
        InflateError: Not base64 of a zlib stream of UTF-8 text, or larger than ``limit`` (default
            :func:`max_plot_bytes`) once inflated.
    """
    try:
        raw = base64.b64decode(plot_data)
    except (binascii.Error, ValueError) as exc:
        raise InflateError(f"plot_data is not base64 ({exc})") from None
    text = inflate(raw, max_plot_bytes() if limit is None else limit)
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InflateError(f"the inflated plot is not UTF-8 ({exc.reason} at byte {exc.start})") from None


def unpack_allowance(archive_size: int) -> int:
    """The most bytes (members plus :data:`MEMBER_OVERHEAD` each) an archive of ``archive_size`` bytes may
    unpack to before it counts as a decompression bomb."""
    return max(UNPACK_RATIO_FLOOR, unpack_max_ratio() * archive_size)
