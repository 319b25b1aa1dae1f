"""``*.get_all`` ordering, projection and paging of the real ClearML server, over documents held in memory.

``order_by`` always ends with ``id`` for stable paging; paging is ``page``/``page_size`` (at most 500) or
``size``/``scroll_id``; ``only_fields`` keeps dotted paths as Mongo projects them.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from functools import cmp_to_key
from typing import Any, Sequence

from ..core import bad_request
from .fields import get_path, split_path

def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == []


_DIGITS = re.compile(r"(\d+)")


def numeric_key(value: Any) -> Any:
    """Mongo's ``numericOrdering`` collation: digit runs inside strings compare as numbers ("2" < "10")."""
    if not isinstance(value, str):
        return value
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part)
                 for part in _DIGITS.split(value) if part)


def _document_key(value: Any, numeric: bool) -> Any:
    """An embedded document as a comparable tuple of (key, value) pairs in stored order."""
    if not isinstance(value, dict):
        return ((numeric_key(value) if numeric else value),)
    return tuple((k, _document_key(v, numeric) if isinstance(v, dict) else (numeric_key(v) if numeric else v))
                 for k, v in value.items())


def _sort_key_cmp(order: list[tuple[str, bool]], numeric: Sequence[str] = ()):
    def cmp(a: dict, b: dict) -> int:
        for field, desc in order:
            va, vb = get_path(a, field), get_path(b, field)
            if va == vb:
                continue
            numeric_field = bool(numeric) and field.startswith(tuple(numeric))
            if va is not None and vb is not None and (isinstance(va, dict) or isinstance(vb, dict)):
                # Mongo compares embedded documents field by field
                va, vb = _document_key(va, numeric_field), _document_key(vb, numeric_field)
            elif numeric_field:
                va, vb = numeric_key(va), numeric_key(vb)
            if va is None:
                r = -1
            elif vb is None:
                r = 1
            else:
                try:
                    r = -1 if va < vb else 1
                except TypeError:
                    r = -1 if str(va) < str(vb) else 1
            return -r if desc else r
        return 0
    return cmp


def _sorted_by_keys(docs: list[dict], order: list[tuple[str, bool]]) -> list[dict] | None:
    """The order of :func:`_sort_key_cmp` with each document's values read once (stable sorts from the last field
    to the first); None when some value is not a string or missing (the comparison then decides)."""
    columns = [[get_path(d, field) for d in docs] for field, _ in order]
    if any(v is not None and not isinstance(v, str) for column in columns for v in column):
        return None
    index = list(range(len(docs)))
    for (_, desc), column in zip(reversed(order), reversed(columns)):
        index.sort(key=lambda i, c=column: (0, "") if c[i] is None else (1, c[i]), reverse=desc)
    return [docs[i] for i in index]


def sort_docs(docs: list[dict], order_by: Any, numeric_prefixes: Sequence[str] = ()) -> list[dict]:
    """Sort by ``order_by`` (``-field`` descending), always ending with ``id`` like the real server.

    As on the real server, documents whose first ascending order field is missing or empty come last
    (Mongo puts them first; the server queries them separately after the others). When the first order
    field starts with one of ``numeric_prefixes`` (the real documents' ``_field_collation_overrides``, e.g.
    ``hyperparams.``), strings compare with numeric ordering as Mongo's ``numericOrdering`` collation does.
    """
    if not order_by:
        return docs
    items = order_by if isinstance(order_by, list) else [order_by]
    if any(not isinstance(item, str) for item in items):
        raise bad_request("order_by must be a list of field names")
    order = [(item.lstrip("-"), item.startswith("-")) for item in items if item and item != "@text_score"]
    if not any(f == "id" for f, _ in order):
        order.append(("id", False))
    first, desc = order[0]
    numeric = numeric_prefixes if first.startswith(tuple(numeric_prefixes or ("\0",))) else ()
    ordered = _sorted_by_keys(docs, order) if not numeric else None
    if ordered is None:
        ordered = sorted(docs, key=cmp_to_key(_sort_key_cmp(order, numeric)))
    if desc:
        return ordered
    return ([d for d in ordered if not _is_empty(get_path(d, first))] +
            [d for d in ordered if _is_empty(get_path(d, first))])


def project(doc: dict, only_fields: Sequence[str] | None) -> dict:
    """Keep only the dotted ``only_fields`` (plus ``id``); ``-field`` entries are left out instead.

    As Mongo's projection, a path through a list of sub-documents keeps that field of each of them
    (``models.output.name`` -> ``{"models": {"output": [{"name": ...}, ...]}}``), and the existing parents of a missing
    field are kept empty (``runtime.version`` -> ``runtime: {}``).
    """
    if not only_fields:
        return doc
    include = [f for f in only_fields if not f.startswith("-")]
    exclude = {f.lstrip("-") for f in only_fields if f.startswith("-")} - set(include)
    if exclude:
        doc = copy.deepcopy(doc)
        for path in exclude:
            *parents, leaf = split_path(path)
            target: Any = doc
            for part in parents:
                target = target.get(part) if isinstance(target, dict) else None
            if isinstance(target, dict):
                target.pop(leaf, None)
        if not include:
            return doc
    out: dict = {"id": doc.get("id")}
    for path in include:
        _project_path(doc, split_path(path), out)
    return out


def _project_path(value: dict, parts: list[str], out: dict) -> None:
    """Copy the field at ``parts`` of ``value`` into ``out`` (through lists of sub-documents)."""
    head, rest = parts[0], parts[1:]
    if head not in value:
        return
    found = value[head]
    if not rest:
        out[head] = found
    elif isinstance(found, dict):
        target = out.get(head)
        _project_path(found, rest, target if isinstance(target, dict) else out.setdefault(head, {}))
    elif isinstance(found, list):
        items = [item for item in found if isinstance(item, dict)]
        target = out.get(head)
        if not isinstance(target, list) or len(target) != len(items):
            target = out[head] = [{} for _ in items]
        for item, holder in zip(items, target):
            _project_path(item, rest, holder)


MAX_PAGE_SIZE = 500  # the real server's mongo max_page_size


def _scroll_position(scroll_id: Any) -> int:
    if not scroll_id:
        return 0
    try:
        return int(json.loads(base64.urlsafe_b64decode(str(scroll_id).encode())))
    except Exception:
        raise bad_request(f"Invalid scroll id {scroll_id!r}") from None


def paginate(docs: list[dict], data: dict) -> tuple[list[dict], str | None]:
    """The real server's paging; returns the rows and the next scroll id (scroll mode only).

    ``page``/``page_size`` default to 0/500 and page_size is capped at 500, so a query without paging
    returns at most 500 documents. With a ``scroll_id`` key (empty for the first call) and an integer
    ``size``, each call continues where the last one stopped; ``refresh_scroll`` returns everything
    from the start up to the current position again. A raw ``start`` with ``size`` also works.
    """
    if "scroll_id" in data or data.get("start") is not None:
        size = data.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise bad_request("Integer size parameter greater than 1 should be provided when working with scroll")
        if "scroll_id" in data:
            start = _scroll_position(data.get("scroll_id"))
            if data.get("refresh_scroll"):
                size, start = max(start, size), 0
        else:
            start = int(data["start"])
        rows = docs[start:start + size]
        position = start + len(rows)
        scroll = base64.urlsafe_b64encode(json.dumps(position).encode()).decode()
        return rows, (scroll if "scroll_id" in data else None)
    page, page_size = data.get("page"), data.get("page_size")
    page = 0 if page is None else page
    page_size = MAX_PAGE_SIZE if page_size is None else page_size
    if not isinstance(page, int) or page < 0:
        raise bad_request("page must be >=0")
    if not isinstance(page_size, int) or page_size < 1:
        raise bad_request("page_size must be >0")
    page_size = min(page_size, MAX_PAGE_SIZE)
    return docs[page * page_size:(page + 1) * page_size], None
