"""``*.get_all`` query semantics of the real ClearML server, over documents held in memory.

Mirrors the real server's rules (``apiserver/database/model/base.py``): name fields are regex
(``re.search``, unanchored), list fields (``id``, ``tags``, ``system_tags``, ``project``, ``status``...)
take ``__$all``/``__$any``/``__$not``/``-value`` operators, datetime fields take ``[">=2024-..", "<.."]``
or an inclusive ``[min, max]`` pair, ``order_by`` always ends with ``id`` for stable paging, and paging is
``page``/``page_size`` or ``size``/``scroll_id``.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from datetime import datetime, timezone
from functools import cmp_to_key
from typing import Any, Iterable, Sequence

from ..timestamps import parse_clearml_time
from .registry import ApiError, bad_request

ACCESS_REGEX = re.compile(r"^(?P<prefix>>=|>|<=|<)?(?P<value>.*)$")
OPS = {">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, "<": lambda a, b: a < b,
       None: lambda a, b: a == b}


def now_iso() -> str:
    """The current UTC time as the real server renders datetimes (Mongo keeps milliseconds)."""
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000).isoformat(timespec="microseconds")


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


# -- filters ----------------------------------------------------------------------------------------
def match_regex(pattern: str, value: Any) -> bool:
    """Mongo ``$regex`` semantics: unanchored search."""
    if value is None:
        return False
    try:
        return re.search(pattern, str(value)) is not None
    except re.error as exc:
        raise ApiError(400, 21, f"Malformed regular expression {pattern!r}: {exc}") from None


def match_list(doc_value: Any, data: Any, field: str) -> bool:
    """List-field filter with the real server's operators (``__$all``, ``__$any``, ``__$not``, ``-x``)."""
    return list_matcher(data, field)(doc_value)


def list_matcher(data: Any, field: str):
    """Parse a list-field query once; returns ``predicate(doc_value) -> bool``."""
    if not isinstance(data, (list, tuple)):
        data = [data]
    actions: dict[str, list] = {}
    allow_empty = False
    global_op: str | None = None
    context = "or"
    negate_next = False
    legacy = True
    for item in data:
        if item is None:
            global_op = global_op or "and"
            allow_empty = True
            negate_next = False
            continue
        if not isinstance(item, str):
            raise ApiError(400, 16, f"Invalid value type for {field}: string expected")
        if item == "__$nop":
            global_op = global_op or "and"
            context, legacy, negate_next = "or", True, False
            continue
        if item.startswith("__$"):
            if negate_next:
                raise ApiError(400, 16, f"Value is expected after __$not in {field}")
            if item == "__$not":
                negate_next = True
                continue
            op = {"__$all": "and", "__$and": "and", "__$any": "or", "__$or": "or"}.get(item)
            if op is None:
                raise ApiError(400, 16, f"Unsupported operator {item} for {field}")
            context, legacy = op, False
            global_op = global_op or op
            continue
        global_op = global_op or "and"
        include = not negate_next
        if include and legacy and item.startswith("-"):
            item, include = item[1:], False
            if not item:
                raise ApiError(400, 16, f"Missing value after the exclude prefix - in {field}")
        negate_next = False
        modifier = {("and", True): "all", ("and", False): "nin",
                    ("or", True): "in", ("or", False): "nin"}[(context, include)]
        actions.setdefault(modifier, []).append(item)
    if negate_next:
        raise ApiError(400, 16, f"Value is expected after __$not in {field}")
    sets = [(modifier, set(items)) for modifier, items in actions.items()]
    combine = all if (global_op or "and") == "and" else any

    def predicate(doc_value: Any) -> bool:
        values = doc_value if isinstance(doc_value, list) else ([] if doc_value is None else [doc_value])
        have = set(values)
        results = [bool(have & items) if modifier == "in" else items <= have if modifier == "all"
                   else not (have & items) for modifier, items in sets]
        if not results:  # only None given: Mongo's empty Q | "empty" is just "empty"
            return not values if allow_empty else True
        return combine(results) or (allow_empty and not values)

    return predicate


def _compare(a: Any, b: Any) -> Any:
    """Make two values comparable: datetimes parse, numbers stay numbers."""
    ta, tb = parse_clearml_time(a) if isinstance(a, str) else a, parse_clearml_time(b) if isinstance(b, str) else b
    if isinstance(ta, datetime) and isinstance(tb, datetime):
        return ta, tb
    return a, b


def match_range(doc_value: Any, data: Any, field: str) -> bool:
    """An inclusive ``[min, max]`` pair (either may be None; None min also matches a missing value)."""
    if not isinstance(data, (list, tuple)) or len(data) != 2:
        raise bad_request(f"Min and max values should be specified for range field {field}")
    low, high = data
    if low is None and high is None:
        raise bad_request(f"At least one of min or max values should be provided for field {field}")
    if doc_value is None:
        return low is None
    try:
        if low is not None:
            a, b = _compare(doc_value, low)
            if a < b:
                return False
        if high is not None:
            a, b = _compare(doc_value, high)
            if a > b:
                return False
    except TypeError:
        return False
    return True


def match_dates(doc_value: Any, data: Any, field: str) -> bool:
    """Datetime filter: ``[">=t1", "<t2"]`` conditions, or an inclusive ``[t1, t2]`` pair."""
    if not isinstance(data, list):
        data = [data]
    if any(d is not None and not isinstance(d, str) for d in data):
        raise bad_request(f"failed parsing query field {field}: datetime strings expected")
    if len(data) == 2 and not any(d.startswith(tuple(OPS_PREFIXES)) for d in data if d is not None):
        return match_range(doc_value, data, field)
    when = parse_clearml_time(doc_value)
    for item in data:
        m = ACCESS_REGEX.match(item or "")
        bound = parse_clearml_time(m.group("value")) if m else None
        if bound is None:
            continue  # the real server ignores values it cannot parse
        if when is None or not OPS[m.group("prefix")](when, bound):
            return False
    return True


OPS_PREFIXES = (">=", ">", "<=", "<")


def filter_docs(docs: Iterable[dict], data: dict, *, regex_fields: Sequence[str] = ("name",),
                list_fields: Sequence[str] = (), date_fields: Sequence[str] = (),
                range_fields: Sequence[str] = (), exact_fields: Sequence[str] = (),
                exact_prefixes: Sequence[str] = ()) -> list[dict]:
    """Documents matching every filter present in ``data`` (request fields).

    ``exact_prefixes`` (e.g. ``"runtime."``) make any request field under that prefix an equality filter,
    like the real server's ``fields=("runtime.*",)``.
    """
    checks = []
    for f in regex_fields:
        if data.get(f):
            checks.append(lambda d, f=f, p=data[f]: match_regex(p, get_path(d, f)))
    for f in list_fields:
        if data.get(f) is not None and data.get(f) != []:
            checks.append(lambda d, f=f, m=list_matcher(data[f], f): m(get_path(d, f)))
    for f in date_fields:
        if data.get(f) is not None:
            checks.append(lambda d, f=f, v=data[f]: match_dates(get_path(d, f), v, f))
    for f in range_fields:
        if data.get(f) is not None:
            checks.append(lambda d, f=f, v=data[f]: match_range(get_path(d, f), v, f))
    for f in exact_fields:
        if data.get(f) is not None:
            checks.append(lambda d, f=f, v=data[f]: get_path(d, f) == v)
    for prefix in exact_prefixes:
        for f, v in data.items():
            if f.startswith(prefix) and v is not None:
                checks.append(lambda d, f=f, v=v: get_path(d, f) == v)
    for key in ("_any_", "_all_", "_or_", "_and_"):
        spec = data.get(key)
        if spec is None:
            continue
        if not isinstance(spec, dict) or (spec.get("pattern") is None) == (spec.get("datetime") is None):
            raise ApiError(400, 12, f"Incorrect field format: {key} needs fields and one of pattern or datetime")
        fields = spec.get("fields") or []
        anyop = key in ("_any_", "_or_")
        if spec.get("pattern") is not None:
            try:
                pattern = re.compile(spec["pattern"], re.IGNORECASE)
            except re.error as exc:
                raise ApiError(400, 21, f"Malformed regular expression {spec['pattern']!r}: {exc}") from None
        else:
            fields = [f for f in fields if f in date_fields]
            pattern = None
        if not fields:
            continue
        if pattern is not None:
            checks.append(lambda d, fields=fields, anyop=anyop, pattern=pattern:
                          (any if anyop else all)(pattern.search(str(get_path(d, f) or "")) for f in fields))
        else:
            checks.append(lambda d, fields=fields, anyop=anyop, when=spec["datetime"]:
                          (any if anyop else all)(match_dates(get_path(d, f), when, f) for f in fields))
    return [d for d in docs if all(c(d) for c in checks)]


# -- ordering, projection, paging ----------------------------------------------------------------------
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
    ordered = sorted(docs, key=cmp_to_key(_sort_key_cmp(order, numeric)))
    if desc:
        return ordered
    return ([d for d in ordered if not _is_empty(get_path(d, first))] +
            [d for d in ordered if _is_empty(get_path(d, first))])


def project(doc: dict, only_fields: Sequence[str] | None) -> dict:
    """Keep only the dotted ``only_fields`` (plus ``id``); ``-field`` entries are left out instead."""
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
        value = get_path(doc, path)
        if value is None and not _has_path(doc, path):
            _keep_parents(doc, path, out)  # Mongo keeps an existing parent: runtime.version -> runtime: {}
            continue
        parts = split_path(path)
        target = out
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return out


def _keep_parents(doc: dict, path: str, out: dict) -> None:
    """Copy the existing embedded-document parents of a missing dotted path as empty dicts."""
    value: Any = doc
    target = out
    for part in split_path(path)[:-1]:
        value = value.get(part) if isinstance(value, dict) else None
        if not isinstance(value, dict):
            return
        target = target.setdefault(part, {})


def _has_path(doc: dict, path: str) -> bool:
    value: Any = doc
    for part in split_path(path):
        if not isinstance(value, dict) or part not in value:
            return False
        value = value[part]
    return True


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
