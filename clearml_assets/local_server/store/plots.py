"""Plots as the real server stores them: from 100,000 characters on, compressed into ``plot_data``; read back
inflated under a limit (:class:`PlotBudget`), as a client-sent ``plot_data`` can be a zlib bomb."""

from __future__ import annotations

import base64
import re
import zlib

PLOT_COMPRESSION_THRESHOLD = 100_000  # services.events.plot_compression_threshold
PLOT_INFLATE_LIMIT = 16 << 20
"""Bytes one stored plot may inflate to when read (a Plotly figure of 16 MiB is already more than a browser
draws); larger ones are answered with ``plot_error`` instead of ``plot_str``."""
RESPONSE_INFLATE_LIMIT = 64 << 20
"""Bytes of plots one answer may inflate in all."""
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


class PlotBudget:
    """How many bytes of plots one answer may still inflate (each plot also at most ``PLOT_INFLATE_LIMIT``).

    A stored ``plot_data`` is whatever a client sent (the real server keeps it as is): 272 KB of it can inflate to
    200 MB. Past the budget a plot is answered without its ``plot_str``, with ``plot_error`` saying why.
    """

    def __init__(self, total: int | None = None) -> None:
        self.left = RESPONSE_INFLATE_LIMIT if total is None else total

    def uncompress(self, event: dict) -> dict:
        """The real ``uncompress_plot``, bounded: ``plot_data`` back into ``plot_str``."""
        plot_data = event.pop("plot_data", None)
        if not plot_data or event.get("plot_str") is not None:
            return event
        limit = min(PLOT_INFLATE_LIMIT, self.left)
        try:
            text = inflate(plot_data, limit)
        except PlotNotInflated as exc:
            event["plot_str"] = ""
            event["plot_error"] = str(exc)
            return event
        self.left -= len(text)
        event["plot_str"] = text
        return event


class PlotNotInflated(ValueError):
    """A stored plot that is not inflated: too large for the limit, or not a zlib stream."""


def inflate(plot_data: str, limit: int) -> str:
    """``plot_data`` (base64 of zlib) inflated, reading at most ``limit + 1`` bytes of output.

    Raises:
        PlotNotInflated: It inflates to more than ``limit`` bytes, or is not base64 of a zlib stream.
    """
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(base64.b64decode(plot_data), limit + 1)
        if len(out) <= limit and not inflater.unconsumed_tail:
            out += inflater.flush(limit + 1 - len(out)) if len(out) < limit + 1 else b""
    except (ValueError, zlib.error) as exc:
        raise PlotNotInflated(f"the plot's compressed data is damaged ({exc})") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise PlotNotInflated(f"the plot inflates to more than {limit:,} bytes (the local server inflates at most "
                              f"{PLOT_INFLATE_LIMIT:,} bytes a plot and {RESPONSE_INFLATE_LIMIT:,} an answer): "
                              "not shown")
    return out.decode("utf-8", "surrogatepass")


def uncompress_plot(event: dict) -> dict:
    """One plot inflated under a budget of its own (see :class:`PlotBudget`)."""
    return PlotBudget().uncompress(event)
