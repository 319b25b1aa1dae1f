"""``FrameQueryError``: what is wrong with a frame query, where (the column), and which part."""

from __future__ import annotations

from ...errors import ClearMLConfigError

_WINDOW = 60  # characters of the query shown on each side of the fault


class FrameQueryError(ClearMLConfigError):
    """A frame query is not valid, names an unknown field, or uses something outside the evaluated subset.

    Attributes:
        query: The query as given.
        position: 0-based offset of the part at fault in ``query`` (None when the whole query is at fault).
        column: ``position + 1`` (what the message says), or None.
        part: The text at fault (a field name, a term, an operator), or "".
    """

    def __init__(self, query: str, problem: str, *, position: int | None = None, part: str = "",
                 hint: str = ""):
        self.query = query if isinstance(query, str) else repr(query)
        self.position = position
        self.column = None if position is None else position + 1
        self.part = part
        self.problem = problem
        super().__init__(_describe(self.query, problem, position, part, hint),
                         metadata={"frame_query": self.query[:500], "column": self.column or 0, "part": part[:200]})


def _describe(query: str, problem: str, position: int | None, part: str, hint: str) -> str:
    shown = query if len(query) <= 200 else query[:200] + f"... ({len(query)} characters)"
    if position is None:
        text = f"Frame query {shown!r}: {problem}."
    else:
        at = f" ({part!r})" if part else ""
        text = f"Frame query error at column {position + 1}{at}: {problem}.\n{_caret(query, position, len(part))}"
    return text + (f"\n{hint}" if hint else "")


def _caret(query: str, position: int, width: int) -> str:
    """Two lines: the query around ``position`` (one line, at most 2 x _WINDOW characters) and a caret
    under the part at fault."""
    start = max(0, position - _WINDOW)
    end = min(len(query), position + max(width, 1) + _WINDOW)
    line = query[start:end].replace("\n", " ").replace("\t", " ")
    prefix = "..." if start else ""
    suffix = "..." if end < len(query) else ""
    marks = "^" * max(1, min(width, end - position))
    return f"  {prefix}{line}{suffix}\n  {' ' * (len(prefix) + position - start)}{marks}"
