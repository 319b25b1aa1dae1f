"""The fields a Lucene-style frame query can name, and how a term matches a field's values.

Fields: ``meta.<column>`` for every manifest column (ClearML's frame metadata), ``rois.label`` (the labels of
the frame's regions of interest: the manifest's ``classes``, whitespace-separated), and ``id`` (the frame id).
Text values match exactly (case-sensitive, as a keyword field); wildcards ``*`` and ``?`` and ``/regex/``
terms are matched with RE2, whose time is linear in the value (no backtracking, whatever the pattern).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass

import pandas as pd
import re2

MAX_PATTERN_MEMORY = 8 << 20  # bytes RE2 may use to compile one wildcard or regex term


@dataclass(frozen=True)
class QueryField:
    """A field of the frame query language mapped onto a manifest column."""

    name: str
    column: str
    multi: bool = False  # several whitespace-separated values per frame (rois.label)

    def kind(self, frame: pd.DataFrame) -> str:
        """``number``, ``bool`` or ``text``: how terms on this field are read."""
        if self.multi:
            return "text"
        dtype = frame[self.column].dtype
        if pd.api.types.is_bool_dtype(dtype):
            return "bool"
        if pd.api.types.is_numeric_dtype(dtype):
            return "number"
        return "text"


def query_fields(frame: pd.DataFrame) -> dict[str, QueryField]:
    """The fields a query may name on ``frame`` (a manifest): ``meta.*``, ``rois.label``, ``id``."""
    fields = {f"meta.{c}": QueryField(f"meta.{c}", str(c)) for c in frame.columns}
    if "classes" in frame.columns:
        fields["rois.label"] = QueryField("rois.label", "classes", multi=True)
    if "frame_id" in frame.columns:
        fields["id"] = QueryField("id", "frame_id")
    return fields


def unknown_field_hint(name: str, fields: dict[str, QueryField]) -> str:
    """What to write instead of an unknown field name."""
    close = difflib.get_close_matches(name, list(fields), n=3, cutoff=0.6)
    if not close and f"meta.{name}" in fields:
        close = [f"meta.{name}"]
    listed = sorted(fields)
    shown = ", ".join(listed[:40]) + (f", ... ({len(listed)} fields)" if len(listed) > 40 else "")
    lead = f"Did you mean {' or '.join(close)}? " if close else ""
    return f"{lead}Fields of this version: {shown}."


def wildcard_pattern(value: str) -> str:
    """An RE2 pattern for a Lucene term with ``*``/``?`` wildcards (``\\`` escapes the next character)."""
    out, escaped = [], False
    for char in value:
        if escaped:
            out.append(re2.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        else:
            out.append(re2.escape(char))
    return "".join(out)


def glob_segments(value: str) -> list[str] | None:
    """The literal pieces between the unescaped ``*`` of a term, or None if it has an unescaped ``?``."""
    pieces, current, escaped = [], [], False
    for char in value:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "?":
            return None
        elif char == "*":
            pieces.append("".join(current))
            current = []
        else:
            current.append(char)
    pieces.append("".join(current))
    return pieces


def glob_matcher(pieces: list[str]):
    """A test for ``*`` wildcards without ``?``: prefix, suffix, then each middle piece leftmost in order.

    Leftmost-first placement of the pieces is exact for ``*`` patterns, and every step is a ``str`` search
    (linear in the value), so there is nothing to backtrack over.
    """
    first, last, middle = pieces[0], pieces[-1], pieces[1:-1]
    least = len(first) + len(last)

    def test(value: str) -> bool:
        if len(value) < least or not value.startswith(first) or not value.endswith(last):
            return False
        at, end = len(first), len(value) - len(last)
        for piece in middle:
            found = value.find(piece, at, end)
            if found < 0:
                return False
            at = found + len(piece)
        return True

    return test


def has_wildcard(value: str) -> bool:
    """Whether a term has an unescaped ``*`` or ``?``."""
    escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in "*?":
            return True
    return False


def unescape(value: str) -> str:
    """A Lucene term without its escapes (``\\:`` -> ``:``)."""
    out, escaped = [], False
    for char in value:
        if escaped or char != "\\":
            out.append(char)
            escaped = False
        else:
            escaped = True
    return "".join(out)


def compile_pattern(pattern: str):
    """Compile an RE2 pattern (bounded memory, ``.`` matches newlines too); ValueError with RE2's reason."""
    options = re2.Options()
    options.max_mem = MAX_PATTERN_MEMORY
    options.dot_nl = True
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except Exception as exc:  # noqa: BLE001 - re2 raises its own error type
        reason = exc.args[0] if exc.args else exc
        raise ValueError(reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)) from None


def number(value: str) -> float:
    """A term read as a number; ValueError if it is not one (NaN is not)."""
    result = float(value)
    if math.isnan(result):
        raise ValueError(value)
    return result


def boolean(value: str) -> bool:
    """A term read as a boolean (``true``/``false``, any case); ValueError otherwise."""
    lowered = value.lower()
    if lowered not in ("true", "false"):
        raise ValueError(value)
    return lowered == "true"
