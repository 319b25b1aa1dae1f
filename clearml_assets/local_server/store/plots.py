"""Plots as the real server stores them: from 100,000 characters on, compressed into ``plot_data``."""

from __future__ import annotations

import base64
import re
import zlib

PLOT_COMPRESSION_THRESHOLD = 100_000  # services.events.plot_compression_threshold
IMG_SOURCE_RE = re.compile(r"['\"]source['\"]:\s?['\"]([a-z][a-z0-9+\-.]*://.*?)['\"]", flags=re.IGNORECASE)


def compress_plot(event: dict) -> None:
    """``plot_len``, ``source_urls`` and, from ``PLOT_COMPRESSION_THRESHOLD`` characters, ``plot_data``
    (base64 of zlib level 1, in ``base64.encodebytes`` lines) instead of ``plot_str``: the real
    ``validate_and_compress_plots``."""
    plot_str = event.get("plot_str")
    if not plot_str:
        event["plot_len"] = 0
        return
    plot_str = plot_str if isinstance(plot_str, str) else str(plot_str)
    event["plot_len"] = len(plot_str)
    urls = set(IMG_SOURCE_RE.findall(plot_str))
    if urls:
        event["source_urls"] = list(urls)
    if len(plot_str) >= PLOT_COMPRESSION_THRESHOLD:
        event["plot_data"] = base64.encodebytes(zlib.compress(plot_str.encode("utf-8", "surrogatepass"), level=1)
                                                ).decode("ascii")
        event.pop("plot_str", None)


def uncompress_plot(event: dict) -> dict:
    """The real ``uncompress_plot``: ``plot_data`` back into ``plot_str`` (read paths that do so)."""
    plot_data = event.pop("plot_data", None)
    if plot_data and event.get("plot_str") is None:
        event["plot_str"] = zlib.decompress(base64.b64decode(plot_data)).decode("utf-8", "surrogatepass")
    return event
