"""Evaluate a parsed Lucene-style frame query on a manifest (a boolean mask, vectorised where it can be).

Semantics (documented in README, "Frame queries"): ``AND``/``OR``/``NOT`` are boolean operators, ``NOT`` binding tightest, then ``AND``, then ``OR``; terms side by side with no operator
are joined as Lucene and Elasticsearch join them by default: ``OR``, where ``+term`` must match and
``-term`` (or ``NOT term``) must not. ``field:(a OR b)`` applies the group to the field.
"""

from __future__ import annotations

import operator
from functools import reduce
from typing import Callable

import numpy as np
import pandas as pd
from luqum import tree as lt

from .errors import FrameQueryError
from .fields import (
    QueryField, boolean, compile_pattern, glob_matcher, glob_segments, has_wildcard, number, query_fields, unescape,
    unknown_field_hint, wildcard_pattern,
)
from .lucene import node_text

EXISTS_FIELD = "_exists_"
_BOUNDS = {(lt.From, True): operator.ge, (lt.From, False): operator.gt,
           (lt.To, True): operator.le, (lt.To, False): operator.lt}


class LuceneEvaluator:
    """Evaluates one parsed query on one manifest."""

    def __init__(self, frame: pd.DataFrame, query: str, fields: dict[str, QueryField] | None = None):
        self.frame = frame
        self.query = query
        self.fields = fields if fields is not None else query_fields(frame)
        self._tokens: dict[str, pd.Series] = {}
        self._text: dict[str, pd.Series] = {}
        self._factors: dict[str, tuple[np.ndarray, list[str]]] = {}

    def fault(self, node: lt.Item, problem: str, part: str | None = None, hint: str = "") -> FrameQueryError:
        """An error at ``node``."""
        return FrameQueryError(self.query, problem, position=node.pos, hint=hint,
                               part=node_text(self.query, node) if part is None else part)

    def _all(self, value: bool = True) -> pd.Series:
        return pd.Series(value, index=self.frame.index, dtype=bool)

    def mask(self, node: lt.Item, field: QueryField | None = None) -> pd.Series:
        """The rows ``node`` selects (``field``: the field of an enclosing ``field:(...)`` group)."""
        if isinstance(node, lt.SearchField):
            return self._search_field(node, field)
        if isinstance(node, (lt.Group, lt.FieldGroup)):
            return self.mask(node.expr, field)
        if isinstance(node, lt.AndOperation):
            return reduce(operator.and_, (self.mask(c, field) for c in node.children))
        if isinstance(node, lt.OrOperation):
            return reduce(operator.or_, (self.mask(c, field) for c in node.children))
        if isinstance(node, lt.UnknownOperation):
            return self._implicit(node, field)
        if isinstance(node, (lt.Not, lt.Prohibit)):
            return ~self.mask(node.a, field)
        if isinstance(node, lt.Plus):
            return self.mask(node.a, field)
        if isinstance(node, lt.Boost):
            return self.mask(node.expr, field)
        if field is None and isinstance(node, lt.Word) and node.value in ("&&", "||"):
            raise self.fault(node, f"{node.value} is not an operator here", hint="Write AND / OR.")
        if field is None:
            raise self.fault(node, "a term needs a field",
                             hint=f"Write e.g. meta.<key>:{node_text(self.query, node)} or "
                                  f"rois.label:{node_text(self.query, node)}.")
        return self._term(node, field)

    def _implicit(self, node: lt.UnknownOperation, field: QueryField | None) -> pd.Series:
        must, must_not, should = [], [], []
        for child in node.children:
            if isinstance(child, lt.Plus):
                must.append(self.mask(child.a, field))
            elif isinstance(child, (lt.Prohibit, lt.Not)):
                must_not.append(self.mask(child.a, field))
            else:
                should.append(self.mask(child, field))
        result = self._all()
        for part in must:
            result &= part
        for part in must_not:
            result &= ~part
        if should and not must:
            result &= reduce(operator.or_, should)
        return result

    def _search_field(self, node: lt.SearchField, outer: QueryField | None) -> pd.Series:
        if outer is not None:
            raise self.fault(node, f"field {node.name!r} inside the group of field {outer.name!r}",
                             part=node.name)
        if node.name == EXISTS_FIELD:
            return self._exists(node)
        field = self.fields.get(unescape(node.name))
        if field is None:
            raise self.fault(node, f"unknown field {node.name!r}", part=node.name,
                             hint=unknown_field_hint(unescape(node.name), self.fields))
        return self.mask(node.expr, field)

    def _exists(self, node: lt.SearchField) -> pd.Series:
        if not isinstance(node.expr, lt.Word) or has_wildcard(node.expr.value):
            raise self.fault(node.expr, "_exists_ takes one field name, e.g. _exists_:meta.split")
        field = self.fields.get(unescape(node.expr.value))
        if field is None:
            raise self.fault(node.expr, f"unknown field {node.expr.value!r}",
                             hint=unknown_field_hint(unescape(node.expr.value), self.fields))
        return self._present(field)

    def _present(self, field: QueryField) -> pd.Series:
        if field.multi:
            return self._token_lists(field).map(bool).astype(bool)
        column = self.frame[field.column]
        if field.kind(self.frame) == "text":
            return (column.notna() & (column.astype(str) != "")).astype(bool)
        return column.notna().astype(bool)

    def _term(self, node: lt.Item, field: QueryField) -> pd.Series:
        if isinstance(node, lt.Range):
            return self._range(node, field)
        if isinstance(node, (lt.From, lt.To)):
            return self._compare(node, field, _BOUNDS[(type(node), node.include)], node.a)
        if isinstance(node, lt.Regex):
            return self._pattern(node, field, node.value[1:-1])
        if isinstance(node, lt.Phrase):
            return self._equals(node, field, unescape(node.value[1:-1]))
        if isinstance(node, lt.Word):
            if node.value == "*":
                return self._present(field)
            if has_wildcard(node.value):
                pieces = glob_segments(node.value)
                if pieces is not None:
                    self._text_only(node, field)
                    return self._text_test(field, glob_matcher(pieces))
                return self._pattern(node, field, wildcard_pattern(node.value))
            return self._equals(node, field, unescape(node.value))
        raise self.fault(node, f"{type(node).__name__.lower()} terms are not supported in frame queries",
                         hint="Supported: exact terms, \"phrases\", wildcards * and ?, /regex/, [a TO b], {a TO b}, "
                              ">, >=, <, <=, _exists_:field.")

    def _typed(self, node: lt.Item, field: QueryField, value: str):
        kind = field.kind(self.frame)
        try:
            return number(value) if kind == "number" else boolean(value) if kind == "bool" else value
        except ValueError:
            raise self.fault(node, f"{field.name} holds {'numbers' if kind == 'number' else 'true/false'}; "
                                   f"{value!r} is not one") from None

    def _equals(self, node: lt.Item, field: QueryField, value: str) -> pd.Series:
        wanted = self._typed(node, field, value)
        if field.kind(self.frame) == "text" and not field.multi:
            return (self.frame[field.column].notna() & (self._as_text(field) == wanted)).astype(bool)
        if field.multi:
            return self._text_test(field, lambda v: v == wanted)
        return (self.frame[field.column] == wanted).fillna(False).astype(bool)

    def _text_only(self, node: lt.Item, field: QueryField) -> None:
        if field.kind(self.frame) != "text":
            raise self.fault(node, f"{field.name} holds {field.kind(self.frame)} values; wildcards and /regex/ "
                                   "match text only", hint="Use a range instead, e.g. [1 TO 5].")

    def _pattern(self, node: lt.Item, field: QueryField, pattern: str) -> pd.Series:
        self._text_only(node, field)
        try:
            compiled = compile_pattern(pattern)
        except ValueError as exc:
            raise self.fault(node, f"not a valid pattern ({exc})") from None
        return self._text_test(field, lambda v: compiled.fullmatch(v) is not None)

    def _range(self, node: lt.Range, field: QueryField) -> pd.Series:
        result = self._all()
        for bound, include, kind in ((node.low, node.include_low, lt.From), (node.high, node.include_high, lt.To)):
            if not (isinstance(bound, lt.Word) and bound.value == "*"):
                result &= self._compare(bound, field, _BOUNDS[(kind, include)], bound)
        return result

    def _compare(self, node: lt.Item, field: QueryField, compare: Callable, bound: lt.Item) -> pd.Series:
        if not isinstance(bound, (lt.Word, lt.Phrase)) or (isinstance(bound, lt.Word) and has_wildcard(bound.value)):
            raise self.fault(node, "a range bound must be a plain value or *")
        if field.kind(self.frame) == "bool":
            raise self.fault(node, f"{field.name} holds true/false; ranges need numbers or text")
        raw = unescape(bound.value[1:-1] if isinstance(bound, lt.Phrase) else bound.value)
        value = self._typed(bound, field, raw)
        if field.kind(self.frame) == "number":
            return compare(self.frame[field.column], value).fillna(False).astype(bool)
        return self._text_test(field, lambda v: compare(v, value))

    def _token_lists(self, field: QueryField) -> pd.Series:
        if field.column not in self._tokens:
            column = self.frame[field.column]
            self._tokens[field.column] = column.where(column.notna(), "").astype(str).map(lambda s: tuple(s.split()))
        return self._tokens[field.column]

    def _text_test(self, field: QueryField, test: Callable[[str], bool]) -> pd.Series:
        """``test`` once per distinct value (or label), spread over the rows."""
        if field.multi:
            lists = self._token_lists(field)
            hits = {token for token in {t for tokens in lists for t in tokens} if test(token)}
            return lists.map(lambda tokens: any(t in hits for t in tokens)).astype(bool)
        codes, distinct = self._distinct(field)
        passed = np.fromiter((test(value) for value in distinct), dtype=bool, count=len(distinct))
        return pd.Series(np.append(passed, False)[codes], index=self.frame.index, dtype=bool)

    def _distinct(self, field: QueryField) -> tuple[np.ndarray, list[str]]:
        """Per row the index of its text in the distinct texts (missing values: the index past the end)."""
        if field.column not in self._factors:
            codes, uniques = pd.factorize(self.frame[field.column], use_na_sentinel=True)
            distinct = [str(value) for value in uniques.tolist()]
            self._factors[field.column] = (np.where(codes < 0, len(distinct), codes), distinct)
        return self._factors[field.column]

    def _as_text(self, field: QueryField) -> pd.Series:
        if field.column not in self._text:
            self._text[field.column] = self.frame[field.column].astype(str)
        return self._text[field.column]
