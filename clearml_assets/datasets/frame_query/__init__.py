"""Frame queries: choose frames of a manifest, in ClearML's Lucene-style syntax or the pandas form.

Which form a query is in is decided by parsing: a query Python's expression grammar accepts is the pandas
form (``split == "train" and n_circle > 0``); any other is read as ClearML's Lucene-style syntax
(``meta.split:"train" AND NOT rois.label:circle``). They cannot be confused: every Lucene frame query names a
field with ``:``, which the pandas form never has outside a string. Nothing is ever passed to ``eval``;
both forms are bounded in length and nesting before they are parsed. Errors are :class:`FrameQueryError`,
naming the column and the part at fault.
"""

from __future__ import annotations

import re
from typing import Literal

import pandas as pd

from .errors import FrameQueryError
from .fields import QueryField, query_fields
from .lucene import (
    MAX_NESTING, MAX_PATTERN_TERMS, MAX_QUERY_LENGTH, MAX_TERMS, MAX_TREE_DEPTH, check_bounds, parse_lucene,
)
from .lucene_eval import LuceneEvaluator
from .pandas_form import PandasQuery, pandas_mask

__all__ = ["FrameQueryError", "MAX_NESTING", "MAX_PATTERN_TERMS", "MAX_QUERY_LENGTH", "MAX_TERMS", "MAX_TREE_DEPTH", "QueryField",
           "frame_query_mask", "query_fields", "query_syntax", "select_frames"]

# outside double quotes: a field separator, or an upper-case Lucene operator as a word
_LUCENE_MARK = re.compile(r':|\b(?:AND|OR|NOT|TO)\b|\b_exists_\b')
_PHRASE = re.compile(r'"(?:[^"\\]|\\.)*"?')


def _check_common(query: object) -> str:
    if not isinstance(query, str) or not query.strip():
        raise FrameQueryError(query if isinstance(query, str) else repr(query), "it is empty",
                              hint='Write e.g. meta.split:"train" (or split == "train").')
    check_bounds(query)
    return query


def _python_accepts(query: str) -> bool:
    try:
        PandasQuery(query)
        return True
    except FrameQueryError:
        return False


def query_syntax(query: str) -> Literal["pandas", "lucene"]:
    """Which form ``query`` is read in: ``pandas`` if Python's expression grammar accepts it, else ``lucene``
    (unless nothing in it is Lucene: no ``field:``, no upper-case ``AND``/``OR``/``NOT``/``TO`` outside quotes;
    then it is a pandas query with a syntax error, and its error says where).

    Raises:
        FrameQueryError: Empty, over-long or too deeply bracketed.
    """
    if _python_accepts(_check_common(query)):
        return "pandas"
    return "lucene" if _LUCENE_MARK.search(_PHRASE.sub('""', query)) else "pandas"


def frame_query_mask(manifest: pd.DataFrame, query: str) -> pd.Series:
    """Boolean mask of the manifest rows selected by ``query`` (either form, see the module docstring).

    Raises:
        FrameQueryError: Invalid syntax, a construct outside what is evaluated, an unknown field or column,
            a bound crossed (length, nesting, terms); naming the column and the part at fault.
    """
    if query_syntax(query) == "pandas":
        mask = pandas_mask(manifest, query)
    else:
        mask = _lucene_mask(manifest, query)
    return mask.reindex(manifest.index).fillna(False).astype(bool)


def _lucene_mask(manifest: pd.DataFrame, query: str) -> pd.Series:
    return LuceneEvaluator(manifest, query, query_fields(manifest)).mask(parse_lucene(query))


def select_frames(manifest: pd.DataFrame, query: str) -> pd.DataFrame:
    """The manifest rows selected by ``query`` (for the pandas form, as ``manifest.query(query)``)."""
    return manifest[frame_query_mask(manifest, query)]
