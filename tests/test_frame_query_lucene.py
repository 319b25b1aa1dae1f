"""Frame queries in ClearML's Lucene-style syntax beside the pandas form: each construct, errors naming the
column and the part at fault, and hostile queries stopped by their bounds (never a crash or a hang)."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from clearml_assets.datasets.frame_query import (
    MAX_NESTING, MAX_PATTERN_TERMS, MAX_QUERY_LENGTH, MAX_TERMS, MAX_TREE_DEPTH, FrameQueryError, frame_query_mask,
    query_syntax,
)


@pytest.fixture(scope="module")
def frames() -> pd.DataFrame:
    """A manifest as curation writes it (one row per frame), with a few awkward values."""
    return pd.DataFrame({
        "frame_id": ["a1", "b2", "c3", "d4", "e5"],
        "split": ["train", "val", "train", "val", "train"],
        "image": ["images/a1.png", "images/b2.png", "images/c 3.png", "images/d4.jpg", "images/e*5.png"],
        "width": [96, 96, 128, 64, 160],
        "n_circle": [0, 1, 2, 0, 1],
        "classes": ["square", "circle", "circle triangle", "", "circle"],
        "flagged": [True, False, True, False, False],
        "note": ["x", None, "", "y", "z"],
    })


def chosen(frames: pd.DataFrame, query: str) -> list[str]:
    return frames.loc[frame_query_mask(frames, query), "frame_id"].tolist()


@pytest.mark.parametrize("query, expected", [
    ('meta.split:"train"', ["a1", "c3", "e5"]),                                    # quoted phrase
    ("meta.split:train", ["a1", "c3", "e5"]),                                      # bare term
    ('meta.split:"train" AND NOT rois.label:circle', ["a1"]),                     # the example
    ("meta.split:val OR rois.label:triangle", ["b2", "c3", "d4"]),                 # OR
    ("NOT meta.split:train", ["b2", "d4"]),                                        # NOT alone: all others
    ("(meta.split:train OR meta.split:val) AND meta.n_circle:0", ["a1", "d4"]),    # parentheses
    ("meta.split:(train OR val) AND NOT meta.width:96", ["c3", "d4", "e5"]),       # a group on one field
    ("meta.width:[96 TO 128]", ["a1", "b2", "c3"]),                               # inclusive range
    ("meta.width:{96 TO 128]", ["c3"]),                                            # exclusive lower bound
    ("meta.width:[96 TO 128}", ["a1", "b2"]),                                      # exclusive upper bound
    ("meta.width:[100 TO *]", ["c3", "e5"]),                                       # open range
    ("meta.width:>=128", ["c3", "e5"]),
    ("meta.width:<96", ["d4"]),
    ("meta.frame_id:[b TO d]", ["b2", "c3"]),                                      # text range, lexicographic
    ("meta.image:images/*.jpg", ["d4"]),                                           # * wildcard
    ("id:?1 OR id:c?", ["a1", "c3"]),                                              # ? wildcard, the id field
    (r"meta.image:images/e\*5.png", ["e5"]),                                       # an escaped * is a literal
    ('meta.image:"images/c 3.png"', ["c3"]),                                       # a phrase with a blank
    ("meta.frame_id:/[abc][0-9]/", ["a1", "b2", "c3"]),                            # /regex/, whole value
    ("rois.label:tri*", ["c3"]),                                                   # any label of the frame
    ("_exists_:rois.label", ["a1", "b2", "c3", "e5"]),                             # field existence
    ("NOT _exists_:meta.note", ["b2", "c3"]),                                      # None and "" are absent
    ("meta.note:*", ["a1", "d4", "e5"]),                                           # field:* is existence too
    ("meta.flagged:true", ["a1", "c3"]),                                           # booleans
    ("meta.split:val rois.label:triangle", ["b2", "c3", "d4"]),                    # implicit operator: OR
    ("+meta.split:train -rois.label:circle", ["a1"]),                              # +required -prohibited
    ("+meta.split:train meta.n_circle:2", ["a1", "c3", "e5"]),                     # with a required clause, others optional
    ("meta.split:val AND meta.width:64 OR meta.frame_id:a1", ["a1", "d4"]),        # AND binds tighter than OR
    ("NOT meta.split:val AND meta.n_circle:1", ["e5"]),                            # NOT binds tightest
    ("meta.split:train^2", ["a1", "c3", "e5"]),                                    # boosts do not change a filter
    ('split == "train" and n_circle > 0', ["c3", "e5"]),                           # the pandas form still works
    ('split == "val" | ~(n_circle == 0)', ["b2", "c3", "d4", "e5"]),
])
def test_each_construct_selects_the_frames(frames, query, expected):
    assert chosen(frames, query) == expected


@pytest.mark.parametrize("query, syntax", [
    ('split == "train"', "pandas"), ("n_circle > 0 and not flagged", "pandas"), ('meta.split:"train"', "lucene"),
    ("NOT rois.label:circle", "lucene"), ('split == "train" and', "pandas"), ("a AND b", "lucene"),
])
def test_the_form_is_decided_by_parsing(query, syntax):
    assert query_syntax(query) == syntax


@pytest.mark.parametrize("query, column, part, words", [
    ('meta.split:"train" AND NOT rois.lable:circle', 28, "rois.lable", "unknown field 'rois.lable'"),
    ("split:train", 1, "split", "Did you mean meta.split?"),
    ("meta.split:train AND (rois.label:circle", 22, "(", "this bracket is never closed"),
    ("meta.split:train AND", 21, "", "not valid Lucene syntax"),
    ("meta.split:train AND AND meta.width:1", 22, "AND", "not valid Lucene syntax"),
    ("meta.width:abc", 12, "abc", "meta.width holds numbers"),
    ("meta.width:9*", 12, "9*", "wildcards and /regex/ match text only"),
    ("meta.frame_id:/(a/", 15, "/(a/", "not a valid pattern"),
    ("meta.split:trian~1", 12, "trian~1", "fuzzy terms are not supported"),
    ('meta.image:"c 3"~2', 12, '"c 3"~2', "proximity terms are not supported"),
    ("meta.split:train circle", 18, "circle", "a term needs a field"),
    ("_exists_:meta.nope", 10, "meta.nope", "unknown field 'meta.nope'"),
    ("meta.split:(train OR id:a1)", 22, "id", "inside the group of field"),
    ('split == "train" and nope > 1', 22, "nope", "unknown column 'nope'"),
    ('split == "train" and', 21, "", "it ends too early"),
    ("split == 'train'; x = 1", 17, ";", "not valid syntax"),
])
def test_errors_name_the_column_and_the_part(frames, query, column, part, words):
    with pytest.raises(FrameQueryError) as caught:
        frame_query_mask(frames, query)
    error = caught.value
    assert (error.column, error.part) == (column, part), str(error)
    assert words in str(error) and f"column {column}" in str(error)
    lines = str(error).splitlines()
    caret = next(line for line in lines if line.strip().startswith("^"))
    assert lines[lines.index(caret) - 1] == "  " + query.replace("\n", " ")  # the query, then the caret under it
    assert caret.index("^") == column + 1 and caret.count("^") == max(len(part), 1)


def _hostile(frames: pd.DataFrame, query: str) -> FrameQueryError:
    with pytest.raises(FrameQueryError) as caught:
        frame_query_mask(frames, query)
    return caught.value


def test_hostile_queries_are_stopped_by_their_bounds(frames):
    assert "characters long" in str(_hostile(frames, "meta.split:" + "x" * MAX_QUERY_LENGTH))
    nested = _hostile(frames, "(" * (MAX_NESTING + 1) + "meta.split:train" + ")" * (MAX_NESTING + 1))
    assert "nested more than" in str(nested) and nested.column == MAX_NESTING + 1
    assert chosen(frames, "(" * MAX_NESTING + "meta.split:val" + ")" * MAX_NESTING) == ["b2", "d4"]
    assert "levels deep" in str(_hostile(frames, "NOT " * (MAX_TREE_DEPTH + 1) + "meta.split:val"))
    assert "levels deep" in str(_hostile(frames, "- " * 2400 + "meta.split:val"))  # deep without brackets
    assert "levels deep" in str(_hostile(frames, "not " * 2400 + 'split == "val"'))  # the pandas form too
    many = " OR ".join(f"id:x{i}" for i in range(MAX_TERMS + 1))
    assert f"more than {MAX_TERMS} terms" in str(_hostile(frames, many))
    patterns = " OR ".join(f"id:?{i}" for i in range(MAX_PATTERN_TERMS + 1))
    assert "?-wildcard terms" in str(_hostile(frames, patterns))
    assert "not valid Lucene syntax" in str(_hostile(frames, 'meta.split:"' + "x" * 5000))  # unclosed quote


def test_catastrophic_patterns_take_linear_time():
    """Patterns that make a backtracking matcher exponential: RE2 and the string-search glob stay linear, so
    each finishes in about the time of one pass over the values (bounds are generous: CI machines are busy)."""
    values = pd.DataFrame({"image": ["a" * 5000 + str(i) for i in range(200)]})
    for query in ["meta.image:" + "*a" * 400 + "*b", "meta.image:" + "?a" * 400 + "*b", "meta.image:/(a*)*b/",
                  "meta.image:/(a|aa)*c/", "meta.image:/" + "(a?)" * 60 + "a" * 60 + "/"]:
        started = time.monotonic()
        assert not frame_query_mask(values, query).any()
        assert time.monotonic() - started < 30, query  # exponential backtracking would not end this century


def test_training_view_queries_accept_the_same_syntax(frames):
    """The training view asset selects with frame_query_mask: both forms choose the same frames."""
    lucene = frame_query_mask(frames, 'meta.split:"train" AND NOT rois.label:circle')
    pandas_form = frame_query_mask(frames, 'split == "train" and n_circle == 0')
    assert lucene.tolist() == pandas_form.tolist() == [True, False, False, False, False]
