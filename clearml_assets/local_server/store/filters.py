"""``*.get_all`` query semantics of the real ClearML server, over documents held in memory.

Mirrors the real server's rules (``apiserver/database/model/base.py``): name fields are regular expressions
(searched unanchored, with the linear-time RE2 engine, outside the store's lock), list fields (``id``, ``tags``,
``system_tags``, ``project``, ``status``...) take ``__$all``/``__$any``/``__$not``/``-value`` operators, datetime
fields take ``[">=2024-..", "<.."]`` or an inclusive ``[min, max]`` pair. Ordering and paging are in
:mod:`.ordering`.
"""

from __future__ import annotations

import functools

import re
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, ContextManager, Iterable, Sequence

import re2

from ...timestamps import parse_clearml_time
from ..core import ApiError, bad_request
from .fields import get_path

ACCESS_REGEX = re.compile(r"^(?P<prefix>>=|>|<=|<)?(?P<value>.*)$")
RE2_MAX_MEM = 64 << 20  # a pattern whose program needs more is refused (400) rather than compiled
OPS = {">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, "<": lambda a, b: a < b,
       None: lambda a, b: a == b}


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
    when = _parse_time(doc_value)
    for item in data:
        m = ACCESS_REGEX.match(item or "")
        bound = _parse_time(m.group("value")) if m else None
        if bound is None:
            continue  # the real server ignores values it cannot parse
        if when is None or not OPS[m.group("prefix")](when, bound):
            return False
    return True


OPS_PREFIXES = (">=", ">", "<=", "<")


@functools.lru_cache(maxsize=1 << 18)
def _parsed_text(value: str):
    return parse_clearml_time(value)


def _parse_time(value: Any):
    """:func:`parse_clearml_time`, each distinct string parsed once (a filter over 100,000 tasks meets the same
    bound 100,000 times)."""
    return _parsed_text(value) if isinstance(value, str) else parse_clearml_time(value)


@dataclass(frozen=True)
class TextCheck:
    """A regular expression over some text fields of a document (``name``, or ``_any_``'s ``fields``).

    Attributes:
        fields: The dotted fields it reads.
        pattern: The compiled (RE2) expression, searched unanchored as Mongo's ``$regex``.
        any_field: Whether one matching field is enough (else every field must match).
        missing_fails: Whether a missing field fails (a name filter) or counts as ``""`` (``_any_``).
    """

    fields: tuple[str, ...]
    pattern: Any
    any_field: bool = True
    missing_fails: bool = True

    def texts(self, doc: dict) -> tuple[str | None, ...]:
        """The fields' values as text (None: missing), read under the store's lock."""
        values = (get_path(doc, f) for f in self.fields)
        if self.missing_fails:
            return tuple(None if v is None else str(v) for v in values)
        return tuple(str(v or "") for v in values)

    def matches(self, texts: tuple[str | None, ...]) -> bool:
        """Whether the copied values match (no document is touched: this runs outside the lock)."""
        found = (t is not None and self.pattern.search(t) is not None for t in texts)
        return any(found) if self.any_field else all(found)


def compile_pattern(pattern: Any, field: str, ignore_case: bool = False) -> Any:
    """A caller's regular expression compiled with RE2: linear in the text it searches, whatever the pattern
    (Mongo's PCRE would backtrack; Python's ``re`` too: ``^(a+)+$`` on ``"a" * 40 + "!"`` never ends).

    Raises:
        ApiError: 400/21 naming the field when the pattern is not a string or RE2 cannot compile it
            (backreferences and lookarounds have no linear-time form).
    """
    if not isinstance(pattern, str):
        raise ApiError(400, 21, f"Malformed regular expression for {field}: a string is expected, got "
                                f"{type(pattern).__name__}")
    options = re2.Options()
    options.log_errors = False
    options.case_sensitive = not ignore_case
    options.max_mem = RE2_MAX_MEM
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else exc
        raise ApiError(400, 21, f"Malformed regular expression for {field}: {pattern[:200]!r} ({reason}); "
                                "patterns are RE2 syntax (no backreferences or lookarounds)") from None


def match_texts(checks: Sequence[TextCheck], texts: Sequence[tuple]) -> list[bool]:
    """For each document's copied texts (one tuple per check), whether every check matches."""
    return [all(check.matches(values) for check, values in zip(checks, row)) for row in texts]


def filter_docs(docs: Iterable[dict], data: dict, *, regex_fields: Sequence[str] = ("name",),
                list_fields: Sequence[str] = (), date_fields: Sequence[str] = (),
                range_fields: Sequence[str] = (), exact_fields: Sequence[str] = (),
                exact_prefixes: Sequence[str] = (), released: Callable[[], ContextManager] | None = None
                ) -> list[dict]:
    """Documents matching every filter present in ``data`` (request fields).

    ``exact_prefixes`` (e.g. ``"runtime."``) make any request field under that prefix an equality filter,
    like the real server's ``fields=("runtime.*",)``. Regular expressions are matched last, on text copied from
    the candidates, inside ``released()`` (the store's ``lock.released``): never under the store's lock.
    """
    checks, text_checks = _checks(data, regex_fields=regex_fields, list_fields=list_fields,
                                  date_fields=date_fields, range_fields=range_fields, exact_fields=exact_fields,
                                  exact_prefixes=exact_prefixes)
    candidates = [d for d in docs if all(c(d) for c in checks)]
    if not text_checks or not candidates:
        return candidates
    texts = [tuple(check.texts(d) for check in text_checks) for d in candidates]
    with released() if released is not None else nullcontext():
        keep = match_texts(text_checks, texts)
    return [d for d, ok in zip(candidates, keep) if ok]


def _checks(data: dict, *, regex_fields: Sequence[str], list_fields: Sequence[str], date_fields: Sequence[str],
            range_fields: Sequence[str], exact_fields: Sequence[str], exact_prefixes: Sequence[str]
            ) -> tuple[list[Callable[[dict], bool]], list[TextCheck]]:
    """The request's filters: predicates over a document, and the regular expressions over its text fields."""
    checks: list[Callable[[dict], bool]] = _list_filter_checks(data.get("filters"), list_fields)
    text_checks = [TextCheck((f,), compile_pattern(data[f], f)) for f in regex_fields if data.get(f)]
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
        _field_group(data, key, date_fields, checks, text_checks)
    return checks, text_checks


def _field_group(data: dict, key: str, date_fields: Sequence[str], checks: list, text_checks: list) -> None:
    """``_any_``/``_all_``/``_or_``/``_and_``: one pattern (case-insensitive) or datetime over several fields."""
    spec = data.get(key)
    if spec is None:
        return
    if not isinstance(spec, dict) or (spec.get("pattern") is None) == (spec.get("datetime") is None):
        raise ApiError(400, 12, f"Incorrect field format: {key} needs fields and one of pattern or datetime")
    fields = spec.get("fields") or []
    anyop = key in ("_any_", "_or_")
    if spec.get("pattern") is not None:
        pattern = compile_pattern(spec["pattern"], f"{key}.pattern", ignore_case=True)
        if fields:
            text_checks.append(TextCheck(tuple(fields), pattern, any_field=anyop, missing_fails=False))
        return
    fields = [f for f in fields if f in date_fields]
    if fields:
        checks.append(lambda d, fields=fields, anyop=anyop, when=spec["datetime"]:
                      (any if anyop else all)(match_dates(get_path(d, f), when, f) for f in fields))
