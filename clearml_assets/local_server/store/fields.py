"""Dotted field paths into documents (``execution.parameters.lr``), with the real server's key escaping."""

from __future__ import annotations

from typing import Any

_ESCAPES = (("%2E", "."), ("%24", "$"), ("%_%_", "__"))


def unescape_key(part: str) -> str:
    """A path component as the real server's ParameterKeyEscaper writes it (``sec%2Etion``) back to the key."""
    if "%" not in part:
        return part
    pieces = []
    for piece in part.split("%%"):
        for code, char in _ESCAPES:
            piece = piece.replace(code, char)
        pieces.append(piece)
    value = "%".join(pieces)
    return "_" + value[2:] if value.startswith("%_") else value


def split_path(path: str) -> list[str]:
    """A dotted field path as keys (components may be escaped: ``hyperparams.sec%2Etion1``)."""
    return [unescape_key(p) for p in path.split(".")]


def get_path(doc: dict, path: str) -> Any:
    """The value at a dotted path, or None."""
    value: Any = doc
    for part in split_path(path):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def has_path(doc: dict, path: str) -> bool:
    value: Any = doc
    for part in split_path(path):
        if not isinstance(value, dict) or part not in value:
            return False
        value = value[part]
    return True
