"""``*.get_all`` query semantics of the real ClearML server, over documents held in memory.

Mirrors the real server's rules (``apiserver/database/model/base.py``): name fields are regex
(``re.search``, unanchored), list fields (``id``, ``tags``, ``system_tags``, ``project``, ``status``...)
take ``__$all``/``__$any``/``__$not``/``-value`` operators, datetime fields take ``[">=2024-..", "<.."]``
or an inclusive ``[min, max]`` pair. Ordering and paging are in :mod:`.ordering`.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Iterable, Sequence

from ...timestamps import parse_clearml_time
from ..core import ApiError, bad_request
from .fields import get_path

ACCESS_REGEX = re.compile(r"^(?P<prefix>>=|>|<=|<)?(?P<value>.*)$")
OPS = {">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, "<": lambda a, b: a < b,
       None: lambda a, b: a == b}


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
    actions, allow_empty, global_op = _list_query(data if isinstance(data, (list, tuple)) else [data], field)
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


def list_filter_matcher(spec: Any, field: str):
    """The real ``ListQueryFilter`` (``get_all_ex``'s ``filters``, API 2.27): ``{"any": {"include": [...],
    "exclude": [...]}, "all": {...}, "op": "and"|"or"}``; a None in ``include`` means an empty field (in
    ``exclude`` a non-empty one). Returns ``predicate(doc_value) -> bool``.

    Raises:
        ApiError: 400/12 for anything else (the real ValidationError).
    """
    if not isinstance(spec, dict) or set(spec) - {"any", "all", "op"} or spec.get("op", "and") not in ("and", "or"):
        raise ApiError(400, 12, f"Validation error (invalid filter for field {field}: {spec!r})")
    parts = []
    for cond in ("any", "all"):
        lists = spec.get(cond)
        if lists is None:
            continue
        if not isinstance(lists, dict) or set(lists) - {"include", "exclude"}:
            raise ApiError(400, 12, f"Validation error (invalid filter for field {field}: {spec!r})")
        checks = [check for include in (True, False)
                  for check in _filter_checks(lists.get("include" if include else "exclude") or [], include,
                                              cond == "all")]
        if checks:
            parts.append((all if cond == "all" else any, checks))
    combine = all if spec.get("op", "and") == "and" else any

    def predicate(doc_value: Any) -> bool:
        have = set(doc_value if isinstance(doc_value, list) else ([] if doc_value is None else [doc_value]))
        return combine(join(check(have) for check in checks) for join, checks in parts) if parts else True

    return predicate


def _list_filter_checks(filters: Any, list_fields: Sequence[str]) -> list:
    """``filters`` of the list fields as document checks (other fields are ignored, as the real server does)."""
    if filters is not None and not isinstance(filters, dict):
        raise ApiError(400, 12, f"Validation error (invalid value type for filters, an object is expected: "
                                f"{filters!r})")
    return [lambda d, f=f, m=list_filter_matcher(spec, f): m(get_path(d, f))
            for f, spec in (filters or {}).items() if f in list_fields]


def _filter_checks(values: Sequence, include: bool, all_of: bool) -> list:
    """One condition's include (or exclude) checks: ``in``/``all`` (``not all``/``nin``), and ``size 0`` (``not
    size 0``) for a None among them."""
    wanted = {v for v in values if v is not None}
    checks = []
    if None in values:
        checks.append((lambda have: not have) if include else (lambda have: bool(have)))
    if wanted:
        if include:
            checks.append((lambda have: wanted <= have) if all_of else (lambda have: bool(have & wanted)))
        else:
            checks.append((lambda have: not (have & wanted)) if all_of else (lambda have: not wanted <= have))
    return checks


_OPERATORS = {"__$all": "and", "__$and": "and", "__$any": "or", "__$or": "or"}
_MODIFIERS = {("and", True): "all", ("and", False): "nin", ("or", True): "in", ("or", False): "nin"}


def _list_query(data: Sequence, field: str) -> tuple[dict[str, list], bool, str | None]:
    """The real server's list-field query parsing: values per Mongo modifier (``all``/``in``/``nin``),
    whether an empty field matches (a None value), and the operator joining the modifiers."""
    actions: dict[str, list] = {}
    allow_empty = negate_next = False
    global_op: str | None = None
    context, legacy = "or", True
    for item in data:
        if item is None or item == "__$nop":
            global_op = global_op or "and"
            allow_empty = allow_empty or item is None
            negate_next = False
            if item is not None:
                context, legacy = "or", True
            continue
        if not isinstance(item, str):
            raise ApiError(400, 16, f"Invalid value type for {field}: string expected")
        if item.startswith("__$"):
            if negate_next:
                raise ApiError(400, 16, f"Value is expected after __$not in {field}")
            if item == "__$not":
                negate_next = True
                continue
            if item not in _OPERATORS:
                raise ApiError(400, 16, f"Unsupported operator {item} for {field}")
            context, legacy = _OPERATORS[item], False
            global_op = global_op or context
            continue
        global_op = global_op or "and"
        include = not negate_next
        if include and legacy and item.startswith("-"):
            item, include = item[1:], False
            if not item:
                raise ApiError(400, 16, f"Missing value after the exclude prefix - in {field}")
        negate_next = False
        actions.setdefault(_MODIFIERS[(context, include)], []).append(item)
    if negate_next:
        raise ApiError(400, 16, f"Value is expected after __$not in {field}")
    return actions, allow_empty, global_op


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
    checks = _list_filter_checks(data.get("filters"), list_fields)
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
