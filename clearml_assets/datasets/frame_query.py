"""Frame queries: a safe subset of ``pandas.DataFrame.query`` evaluated on the manifest.

A query is parsed with ``ast`` and only these forms are evaluated (no ``eval``, no attribute
access, no calls, no ``@`` variables): column names, literals (str, int, float, bool, None, lists
or tuples of them), comparisons (``== != < <= > >=``, chained), ``in`` / ``not in`` a literal list,
``and`` / ``or`` / ``not`` (and their ``& | ~`` spellings), unary minus on numbers, parentheses.
"""

from __future__ import annotations

import ast
import io
import operator
import tokenize
from typing import Any

import pandas as pd

from ..errors import ClearMLConfigError

MAX_QUERY_LENGTH = 2000

_COMPARE = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt,
    ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
}


class FrameQueryError(ClearMLConfigError):
    """A frame query is not valid or uses something outside the safe subset."""


def _literal(node: ast.AST, query: str) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, bool, type(None))):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant) \
            and isinstance(node.operand.value, (int, float)) and not isinstance(node.operand.value, bool):
        return -node.operand.value
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return [_literal(e, query) for e in node.elts]
    raise FrameQueryError(f"Frame query {query!r}: {ast.unparse(node)!r} is not a literal.")


class _Evaluator:
    def __init__(self, frame: pd.DataFrame, query: str):
        self.frame = frame
        self.query = query

    def fail(self, node: ast.AST, why: str) -> FrameQueryError:
        return FrameQueryError(
            f"Frame query {self.query!r}: {why} ({ast.unparse(node)!r}). Allowed: column names "
            f"({', '.join(map(str, self.frame.columns))}), literals, comparisons, in/not in a list, "
            "and/or/not.")

    def operand(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Name):
            if node.id not in self.frame.columns:
                raise self.fail(node, f"unknown column {node.id!r}")
            return self.frame[node.id]
        return _literal(node, self.query)

    def mask(self, node: ast.AST) -> pd.Series:
        if isinstance(node, ast.BoolOp):
            parts = [self.mask(v) for v in node.values]
            result = parts[0]
            for part in parts[1:]:
                result = (result & part) if isinstance(node.op, ast.And) else (result | part)
            return result
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitAnd, ast.BitOr)):
            left, right = self.mask(node.left), self.mask(node.right)
            return (left & right) if isinstance(node.op, ast.BitAnd) else (left | right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.Invert)):
            return ~self.mask(node.operand)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.Name) and node.id in self.frame.columns \
                and pd.api.types.is_bool_dtype(self.frame[node.id]):
            return self.frame[node.id].astype(bool)
        if isinstance(node, ast.Constant) and isinstance(node.value, bool):
            return pd.Series(node.value, index=self.frame.index)
        raise self.fail(node, "not a condition")

    def compare(self, node: ast.Compare) -> pd.Series:
        result = pd.Series(True, index=self.frame.index)
        left_node = node.left
        for op, right_node in zip(node.ops, node.comparators):
            left, right = self.operand(left_node), self.operand(right_node)
            if isinstance(op, (ast.In, ast.NotIn)):
                if not isinstance(left, pd.Series) or not isinstance(right, list):
                    raise self.fail(node, "'in' needs a column on the left and a literal list on the right")
                part = left.isin(right)
                part = ~part if isinstance(op, ast.NotIn) else part
            elif type(op) in _COMPARE:
                if not isinstance(left, pd.Series) and not isinstance(right, pd.Series):
                    raise self.fail(node, "a comparison needs at least one column")
                try:
                    part = _COMPARE[type(op)](left, right)
                except TypeError as exc:
                    raise self.fail(node, f"types do not compare: {exc}") from None
                part = pd.Series(part, index=self.frame.index).fillna(False).astype(bool)
            else:
                raise self.fail(node, f"operator {type(op).__name__} is not allowed")
            result = result & part
            left_node = right_node
        return result


def _replace_booleans(query: str) -> str:
    # As pandas does: ``&``/``|`` are boolean and/or with their (low) precedence, not bitwise ops.
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(query).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError) as exc:
        raise FrameQueryError(f"Frame query {query!r} is not valid syntax: {exc}.") from None
    out = []
    for tok in tokens:
        if tok.type == tokenize.OP and tok.string in ("&", "|"):
            tok = tok._replace(type=tokenize.NAME, string="and" if tok.string == "&" else "or")
        out.append((tok.type, tok.string))
    return tokenize.untokenize(out)


def parse_frame_query(query: str) -> ast.Expression:
    """Parse ``query`` (pandas query syntax) and reject anything outside the safe subset's grammar."""
    if not isinstance(query, str) or not query.strip():
        raise FrameQueryError("Frame query is empty; use e.g. split == \"train\".")
    if len(query) > MAX_QUERY_LENGTH:
        raise FrameQueryError(f"Frame query is longer than {MAX_QUERY_LENGTH} characters.")
    try:
        tree = ast.parse(_replace_booleans(query.strip()).strip(), mode="eval")
    except SyntaxError as exc:
        raise FrameQueryError(f"Frame query {query!r} is not valid syntax: {exc.msg}.") from None
    allowed = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.Invert, ast.USub,
               ast.BinOp, ast.BitAnd, ast.BitOr, ast.Compare, ast.Name, ast.Load, ast.Constant,
               ast.List, ast.Tuple, ast.Set, ast.In, ast.NotIn, *_COMPARE)
    for node in ast.walk(tree):
        if not isinstance(node, allowed):
            raise FrameQueryError(
                f"Frame query {query!r} uses {type(node).__name__} ({ast.unparse(node)!r}), which is not "
                "allowed: only column names, literals, comparisons, in, and/or/not.")
        if isinstance(node, ast.BinOp) and not isinstance(node.op, (ast.BitAnd, ast.BitOr)):
            raise FrameQueryError(f"Frame query {query!r}: arithmetic is not allowed ({ast.unparse(node)!r}).")
        if isinstance(node, ast.Name) and node.id.startswith("__"):
            raise FrameQueryError(f"Frame query {query!r}: name {node.id!r} is not allowed.")
    return tree


def frame_query_mask(manifest: pd.DataFrame, query: str) -> pd.Series:
    """Boolean mask of the manifest rows selected by ``query``.

    Raises:
        FrameQueryError: Invalid syntax, a construct outside the safe subset, or an unknown column.
    """
    tree = parse_frame_query(query)
    mask = _Evaluator(manifest, query).mask(tree.body)
    return mask.reindex(manifest.index).fillna(False).astype(bool)


def select_frames(manifest: pd.DataFrame, query: str) -> pd.DataFrame:
    """The manifest rows selected by ``query`` (same semantics as ``manifest.query(query)``)."""
    return manifest[frame_query_mask(manifest, query)]
