"""ClearML's Lucene-style frame queries: parsed with ``luqum`` (a kept Lucene query parser), bounded first.

Bounds, checked before anything is evaluated: at most ``MAX_QUERY_LENGTH`` characters, brackets nested at
most ``MAX_NESTING`` deep (counted in one linear pass before the parser sees the text), a parse tree at most
``MAX_TREE_DEPTH`` deep (``NOT NOT ...`` nests without brackets), at most ``MAX_TERMS`` terms, of which at most
``MAX_PATTERN_TERMS`` are ``/regex/`` or ``?``-wildcard terms (``*``-only wildcards are matched with plain string
searches). The parser
is an LALR automaton with an explicit stack (no recursion, no backtracking); its token patterns are linear.
"""

from __future__ import annotations

import re
import threading
from typing import Iterator

from luqum import tree as lt
from luqum.exceptions import ParseError
from luqum.thread import parse as _luqum_parse

from .errors import FrameQueryError
from .fields import glob_segments

MAX_QUERY_LENGTH = 10_000
MAX_NESTING = 32
MAX_TREE_DEPTH = 64
MAX_TERMS = 256
MAX_PATTERN_TERMS = 16  # /regex/ and ?-wildcard terms: RE2 is linear, but each costs a pass over the values

_POSITION = re.compile(r"position (\d+)")
_PARSE_LOCK = threading.Lock()  # ply's parser tables are shared; luqum.thread clones only the lexer
_OPENING, _CLOSING = "([{", ")]}"


def check_bounds(query: str) -> None:
    """Reject an over-long or too deeply bracketed query before parsing (one linear pass).

    Raises:
        FrameQueryError: Naming the column where the bound is crossed.
    """
    if len(query) > MAX_QUERY_LENGTH:
        raise FrameQueryError(query, f"it is {len(query)} characters long, more than the {MAX_QUERY_LENGTH} "
                                     "allowed", position=MAX_QUERY_LENGTH, part=query[MAX_QUERY_LENGTH:][:20])
    depth = 0
    for at, char in _brackets(query):
        depth += 1 if char in _OPENING else -1
        if depth > MAX_NESTING:
            raise FrameQueryError(query, f"brackets are nested more than {MAX_NESTING} deep", position=at, part=char)


def _brackets(query: str) -> Iterator[tuple[int, str]]:
    """The brackets of ``query`` outside double quotes and escapes, with their offsets (one linear pass)."""
    quoted = escaped = False
    for at, char in enumerate(query):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif not quoted and (char in _OPENING or char in _CLOSING):
            yield at, char


def parse_lucene(query: str) -> lt.Item:
    """The ``luqum`` tree of a bounded Lucene-style query.

    Raises:
        FrameQueryError: Too long, too deep, too many terms, or not valid syntax (naming the column).
    """
    check_bounds(query)
    try:
        with _PARSE_LOCK:
            tree = _luqum_parse(query)
    except ParseError as exc:
        raise _syntax_error(query, str(exc)) from None
    except RecursionError:  # cannot happen within the bounds; never let it escape as a crash
        raise FrameQueryError(query, "it is nested too deeply") from None
    _check_tree(query, tree)
    return tree


def _syntax_error(query: str, message: str) -> FrameQueryError:
    found = _POSITION.search(message)
    detail = message.split(":", 1)[-1].strip().rstrip("!")
    detail = re.sub(r"\s+at (position \d+|the end)$", "", detail).replace("  ", " ")
    if found:
        at = min(int(found.group(1)), len(query))
        token = re.match(r"\S+", query[at:])
        return FrameQueryError(query, f"not valid Lucene syntax ({detail})", position=at,
                               part=token.group(0)[:40] if token else query[at:at + 1])
    opener = _unclosed(query)
    if opener is not None:
        return FrameQueryError(query, "not valid Lucene syntax (this bracket is never closed)", position=opener,
                               part=query[opener])
    return FrameQueryError(query, f"not valid Lucene syntax ({detail})", position=len(query), part="",
                           hint="Check that no operator ends the query.")


def _unclosed(query: str) -> int | None:
    """The offset of the last bracket opened and never closed (outside quotes), or None."""
    opened: list[int] = []
    for at, char in _brackets(query):
        if char in _OPENING:
            opened.append(at)
        elif opened:
            opened.pop()
    return opened[-1] if opened else None


def walk(tree: lt.Item) -> Iterator[tuple[lt.Item, int]]:
    """Every node with its depth, without recursion (the tree may be deep before it is checked)."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        yield node, depth
        stack.extend((child, depth + 1) for child in reversed(list(node.children)))


def _is_pattern(node: lt.Item) -> bool:
    """A term RE2 evaluates: a /regex/, or a wildcard term with an unescaped ``?``."""
    if isinstance(node, lt.Regex):
        return True
    return isinstance(node, lt.Word) and glob_segments(node.value) is None


def _check_tree(query: str, tree: lt.Item) -> None:
    terms = patterns = 0
    for node, depth in walk(tree):
        at = node.pos or 0  # str(node) recurses: the text is taken from the query instead
        if depth > MAX_TREE_DEPTH:
            raise FrameQueryError(query, f"it nests more than {MAX_TREE_DEPTH} levels deep", position=at,
                                  part=query[at:at + 20].strip())
        if isinstance(node, lt.Term):
            terms += 1
            if terms > MAX_TERMS:
                raise FrameQueryError(query, f"it has more than {MAX_TERMS} terms", position=at,
                                      part=query[at:at + (node.size or 1)].strip())
            patterns += _is_pattern(node)
            if patterns > MAX_PATTERN_TERMS:
                raise FrameQueryError(query, f"it has more than {MAX_PATTERN_TERMS} /regex/ or ?-wildcard terms",
                                      position=at, part=query[at:at + (node.size or 1)].strip())


def node_text(query: str, node: lt.Item) -> str:
    """The text of ``node`` in ``query`` (no surrounding blanks)."""
    if node.pos is None:
        return str(node).strip()
    return query[node.pos:node.pos + (node.size or 0)].strip() or str(node).strip()
