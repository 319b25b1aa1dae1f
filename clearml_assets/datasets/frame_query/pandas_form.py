"""The pandas form: a safe subset of ``pandas.DataFrame.query`` evaluated on the manifest.

A query is parsed with ``ast`` and only these forms are evaluated (no ``eval``, no attribute
access, no calls, no ``@`` variables): column names, literals (str, int, float, bool, None, lists
or tuples of them), comparisons (``== != < <= > >=``, chained), ``in`` / ``not in`` a literal list,
``and`` / ``or`` / ``not`` (and their ``& | ~`` spellings), unary minus on numbers, parentheses.
Errors name the column (1-based character offset in the query as given) of the part at fault.
"""

from __future__ import annotations

import ast
import io
import operator
import tokenize
from typing import Any

import pandas as pd

from .errors import FrameQueryError
from .lucene import MAX_TREE_DEPTH

_COMPARE = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt,
    ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
}
_ALLOWED = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.Invert, ast.USub,
            ast.BinOp, ast.BitAnd, ast.BitOr, ast.Compare, ast.Name, ast.Load, ast.Constant,
            ast.List, ast.Tuple, ast.Set, ast.In, ast.NotIn, *_COMPARE)
_WORDS = {"&": " and ", "|": " or "}


class PandasQuery:
    """A parsed pandas-form query: the ``ast`` tree of the rewritten text and the way back to the
    columns of the query as given (``&``/``|`` are rewritten to ``and``/``or``, which moves columns)."""

    def __init__(self, query: str):
        self.query = query
        self._lead = len(query) - len(query.lstrip())  # an expression may not start indented
        self.text, self._replaced = _booleans_as_words(query[self._lead:])
        self._line_starts = [0]
        for line in self.text.splitlines(keepends=True):
            self._line_starts.append(self._line_starts[-1] + len(line))
        try:
            self.tree = ast.parse(self.text, mode="eval")
        except SyntaxError as exc:
            if not exc.offset:  # Python says 0 when the text ended before the expression did
                raise FrameQueryError(query, f"not valid syntax ({exc.msg}: it ends too early)",
                                      position=len(query.rstrip())) from None
            offset = self.offset_of_line_col(exc.lineno or 1, exc.offset - 1, chars=True)
            raise FrameQueryError(query, f"not valid syntax ({exc.msg})", position=offset,
                                  part=query[offset:offset + 1].strip()) from None
        except (RecursionError, MemoryError):
            raise FrameQueryError(query, "it is nested too deeply for Python's parser") from None

    def offset_of_line_col(self, lineno: int, col: int, *, chars: bool = False) -> int:
        """Offset in the query as given of ``lineno``/``col`` in the rewritten text (``col`` in UTF-8 bytes
        as ``ast`` counts, or characters)."""
        start = self._line_starts[min(lineno - 1, len(self._line_starts) - 1)]
        if not chars:
            line = self.text[start:].split("\n", 1)[0]
            col = len(line.encode("utf-8")[:col].decode("utf-8", errors="ignore"))
        return self._original(min(start + col, len(self.text)))

    def _original(self, offset: int) -> int:
        shift = 0
        for at, width in self._replaced:
            if offset < at + shift:
                break
            if offset < at + shift + width:
                return at + self._lead
            shift += width - 1
        return max(0, min(offset - shift + self._lead, len(self.query)))

    def fault(self, node: ast.AST, why: str) -> FrameQueryError:
        """An error at ``node``, naming its text and the allowed forms."""
        line, col = getattr(node, "lineno", 1), getattr(node, "col_offset", 0)
        start = self.offset_of_line_col(line, col)
        end = self.offset_of_line_col(getattr(node, "end_lineno", None) or line,
                                      getattr(node, "end_col_offset", None) or col)
        return FrameQueryError(self.query, why, position=start, part=self.query[start:max(end, start + 1)],
                               hint="The pandas form allows column names, literals, comparisons, in/not in a "
                                    "list, and/or/not.")


def _booleans_as_words(query: str) -> tuple[str, list[tuple[int, int]]]:
    """As pandas does: ``&``/``|`` are boolean and/or with their (low) precedence, not bitwise ops.

    Returns the rewritten text and, per replaced operator, its offset in ``query`` and the width of its
    replacement.
    """
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(query).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError) as exc:
        problem = exc.args[0] if exc.args else exc
        raise FrameQueryError(query, f"not valid syntax ({problem})", position=len(query.rstrip()),
                              hint="Check that every bracket and quote is closed.") from None
    starts = [0]
    for line in query.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    out, replaced, last = [], [], 0
    for tok in tokens:
        if tok.type == tokenize.OP and tok.string in _WORDS:
            at = starts[tok.start[0] - 1] + tok.start[1]
            out.append(query[last:at] + _WORDS[tok.string])
            replaced.append((at, len(_WORDS[tok.string])))
            last = at + 1
    out.append(query[last:])
    return "".join(out), replaced


def _check_grammar(parsed: PandasQuery) -> None:
    stack = [(parsed.tree, 1)]
    while stack:  # depth first without recursion: the tree is not bounded yet
        node, depth = stack.pop()
        if depth > MAX_TREE_DEPTH:
            raise parsed.fault(node, f"it nests more than {MAX_TREE_DEPTH} levels deep")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
        if not isinstance(node, _ALLOWED):
            raise parsed.fault(node, f"{type(node).__name__} is not allowed")
        if isinstance(node, ast.BinOp) and not isinstance(node.op, (ast.BitAnd, ast.BitOr)):
            raise parsed.fault(node, "arithmetic is not allowed")
        if isinstance(node, ast.Name) and node.id.startswith("__"):
            raise parsed.fault(node, f"name {node.id!r} is not allowed")


def parse_pandas_query(query: str) -> PandasQuery:
    """Parse ``query`` (pandas query syntax) and reject anything outside the safe subset's grammar.

    Raises:
        FrameQueryError: Naming the column and the part at fault.
    """
    parsed = PandasQuery(query)
    _check_grammar(parsed)
    return parsed


def _literal(node: ast.AST, parsed: PandasQuery) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, bool, type(None))):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant) \
            and isinstance(node.operand.value, (int, float)) and not isinstance(node.operand.value, bool):
        return -node.operand.value
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return [_literal(e, parsed) for e in node.elts]
    raise parsed.fault(node, "not a literal")


class _Evaluator:
    def __init__(self, frame: pd.DataFrame, parsed: PandasQuery):
        self.frame = frame
        self.parsed = parsed

    def fail(self, node: ast.AST, why: str) -> FrameQueryError:
        return self.parsed.fault(node, why)

    def operand(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Name):
            if node.id not in self.frame.columns:
                known = ", ".join(map(str, self.frame.columns))
                raise self.fail(node, f"unknown column {node.id!r}; the manifest's columns are {known}")
            return self.frame[node.id]
        return _literal(node, self.parsed)

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
        if isinstance(node, ast.Name):
            self.operand(node)  # an unknown column says so first
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
            else:
                if not isinstance(left, pd.Series) and not isinstance(right, pd.Series):
                    raise self.fail(node, "a comparison needs at least one column")
                try:
                    part = _COMPARE[type(op)](left, right)
                except TypeError as exc:
                    raise self.fail(node, f"types do not compare: {exc}") from None
                part = pd.Series(part, index=self.frame.index).fillna(False).astype(bool)
            result = result & part
            left_node = right_node
        return result


def pandas_mask(manifest: pd.DataFrame, query: str) -> pd.Series:
    """Boolean mask of the manifest rows selected by the pandas-form ``query``.

    Raises:
        FrameQueryError: Invalid syntax, a construct outside the safe subset, or an unknown column.
    """
    parsed = parse_pandas_query(query)
    return _Evaluator(manifest, parsed).mask(parsed.tree.body)
