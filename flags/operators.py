"""PostHog's property operators: whether one person or group property filter matches a value
(`match_property`), with the SDKs' coercions of text, numbers, dates and semantic versions. Pure
functions (no database, no Django); `flags.evaluation` applies them to release conditions, and flag
filter validation accepts exactly `PROPERTY_OPERATORS`.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from flags.regex import flag_regex_search

TEXT_OPERATORS = (
    "icontains",
    "not_icontains",
    "starts_with",
    "not_starts_with",
    "ends_with",
    "not_ends_with",
)
NUMERIC_OPERATORS = ("gt", "gte", "lt", "lte")
DATE_OPERATORS = ("is_date_before", "is_date_after")
SEMVER_COMPARISONS = ("semver_eq", "semver_neq", "semver_gt", "semver_gte", "semver_lt", "semver_lte")
SEMVER_RANGES = ("semver_tilde", "semver_caret", "semver_wildcard")
PROPERTY_OPERATORS = frozenset(
    ("exact", "is_not", "is_set", "is_not_set", "regex", "not_regex")
    + TEXT_OPERATORS
    + NUMERIC_OPERATORS
    + DATE_OPERATORS
    + SEMVER_COMPARISONS
    + SEMVER_RANGES
)

NUMERIC_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
RELATIVE_DATE = re.compile(r"^-?(?P<number>[0-9]+)(?P<unit>[a-z])$")
ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class Unmatchable(Exception):
    """The filter or the value cannot be compared; the filter does not match."""


# Whether one property filter matches the properties (the second argument is the clock).
PropertyTest = Callable[[Mapping[str, Any], Callable[[], dt.datetime]], bool]


def match_property(
    property_filter: Mapping[str, Any],
    properties: Mapping[str, Any],
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> bool:
    """Whether one person or group property filter matches `properties` (SDK semantics, C.9).

    A missing property does not match (PostHog's server), except for `is_not_set`, which does.
    """
    operator = property_filter.get("operator") or "exact"
    if operator not in PROPERTY_OPERATORS:
        return False
    key = property_filter.get("key")
    if not isinstance(key, str) or key not in properties:
        return operator == "is_not_set"
    if operator in ("is_set", "is_not_set"):
        return operator == "is_set"
    expected = property_filter.get("value")
    actual = properties[key]
    try:
        return _compare(operator, expected, actual, now)
    except (Unmatchable, RecursionError):
        return False


def property_test(property_filter: Mapping[str, Any]) -> PropertyTest:
    """The filter compiled into a test answering as `match_property` does. `exact` and `is_not`
    against text values (the commonest filters) become a set lookup of the property's text form,
    as `_exact_match` compares; every other filter is tested by `match_property`."""
    operator = property_filter.get("operator") or "exact"
    key = property_filter.get("key")
    expected = property_filter.get("value")
    if (
        operator in ("exact", "is_not")
        and isinstance(key, str)
        and expected != []
        and not _booleanish(expected)
    ):
        candidates = expected if isinstance(expected, list) else [expected]
        try:
            texts = frozenset(_to_text(candidate).lower() for candidate in candidates)
        except (Unmatchable, RecursionError):
            texts = None
        if texts is not None:
            return _text_test(key, texts, negated=operator == "is_not")

    def general(properties: Mapping[str, Any], now: Callable[[], dt.datetime]) -> bool:
        return match_property(property_filter, properties, now=now)

    return general


def property_test_identity(property_filter: Mapping[str, Any]) -> str:
    """The filter as text that two filters share only when they test alike: what `property_test`
    and `match_property` read (operator, key, value) and nothing else, so a test shared by many
    flags can be run once per request."""
    operator = property_filter.get("operator") or "exact"
    return json.dumps([operator, property_filter.get("key"), property_filter.get("value")], sort_keys=True)


def _text_test(key: str, texts: frozenset[str], *, negated: bool) -> PropertyTest:
    def matches(properties: Mapping[str, Any], now: Callable[[], dt.datetime]) -> bool:
        if key not in properties:
            return False
        value = properties[key]
        if isinstance(value, str):
            return (value.lower() in texts) != negated
        try:
            found = _to_text(value).lower() in texts
        except (Unmatchable, RecursionError):
            return False
        return found != negated

    return matches


def _compare(operator: str, expected: Any, actual: Any, now: Callable[[], dt.datetime]) -> bool:
    if operator in NUMERIC_OPERATORS:
        return _compare_numbers(operator, expected, actual)
    if operator in ("exact", "is_not"):
        equal = _exact_match(expected, actual)
        return equal if operator == "exact" else not equal
    if operator in TEXT_OPERATORS:
        return _compare_text(operator, expected, actual)
    if operator in ("regex", "not_regex"):
        found = flag_regex_search(str(expected), _to_text(actual))
        if found is None:
            return False  # an invalid pattern never matches, for either operator
        return found if operator == "regex" else not found
    if actual is None:
        return False
    if operator in DATE_OPERATORS:
        return _compare_dates(operator, expected, actual, now)
    return _compare_semver(operator, expected, actual)


def _to_text(value: Any) -> str:
    """A property value as text: strings as they are, anything else as compact JSON (SDK-compatible)."""
    return value if isinstance(value, str) else _json_text(value)


def _json_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float_text(value)
    if isinstance(value, list):
        return "[" + ",".join(_json_text(item) for item in value) + "]"
    if isinstance(value, Mapping):
        items = (f"{json.dumps(str(k), ensure_ascii=False)}:{_json_text(value[k])}" for k in sorted(value))
        return "{" + ",".join(items) + "}"
    raise Unmatchable


def _float_text(value: float) -> str:
    """Floats printed as PostHog's Rust service prints them (small exponents spelled out)."""
    if not math.isfinite(value):
        raise Unmatchable
    text = repr(value)
    if "e" not in text:
        return text
    mantissa, exponent_text = text.split("e")
    exponent = int(exponent_text)
    if -6 < exponent < 0:
        return format(Decimal(text), "f")
    return f"{mantissa}e{'+' if exponent >= 0 else ''}{exponent}"


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.lower() == "true"
    if isinstance(value, list):
        return all(_truthy(item) for item in value)
    return False


def _booleanish(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, str):
        return value.lower() in ("true", "false")
    if isinstance(value, list):
        return all(_booleanish(item) for item in value)
    return False


def _exact_match(expected: Any, actual: Any) -> bool:
    """Case-insensitive equality of the text forms; a list filter means "any of"."""
    actual_text = _to_text(actual).lower()
    if expected == []:
        return _truthy(actual)
    # Matching version 1: a boolean-looking filter compares truthiness, so "true" matches True.
    if _booleanish(expected):
        return _truthy(expected) == _truthy(actual)
    if isinstance(expected, list):
        return actual_text in {_to_text(candidate).lower() for candidate in expected}
    return _to_text(expected).lower() == actual_text


def _compare_text(operator: str, expected: Any, actual: Any) -> bool:
    haystack = _to_text(actual).translate(ASCII_LOWER)
    needle = _to_text(expected).translate(ASCII_LOWER)
    if operator.endswith("icontains"):
        found = needle in haystack
    elif operator.endswith("starts_with"):
        found = haystack.startswith(needle)
    else:
        found = haystack.endswith(needle)
    return not found if operator.startswith("not_") else found


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    if isinstance(value, str) and not NUMERIC_TEXT.fullmatch(value):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _compare_numbers(operator: str, expected: Any, actual: Any) -> bool:
    bound, number = _number(expected), _number(actual)
    if bound is None or number is None:
        return False
    if operator == "gt":
        return number > bound
    if operator == "gte":
        return number >= bound
    if operator == "lt":
        return number < bound
    return number <= bound


def parse_datetime(text: str) -> dt.datetime:
    """An ISO date or datetime (a trailing `Z` or ` UTC` allowed); naive values are UTC."""
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    elif text.upper().endswith(" UTC"):
        text = text[:-4] + "+00:00"
    elif re.fullmatch(r"\d{4}", text):
        today = dt.datetime.now(dt.UTC)
        try:
            return dt.datetime(int(text), today.month, today.day, tzinfo=dt.UTC)
        except ValueError as error:  # year 0000, or 29 February in a year without one
            raise Unmatchable from error
    text = re.sub(r" ([+-]\d{2}:\d{2})$", r"\1", text)
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError as error:
        raise Unmatchable from error
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _months_earlier(moment: dt.datetime, months: int) -> dt.datetime:
    """Calendar months back, clamping the day at every month passed (Mar 31 - 2 months = Jan 28)."""
    start = moment.year * 12 + moment.month - 1
    target = start - months
    year, month = divmod(target, 12)
    if not 1 <= year <= 9999:
        raise Unmatchable
    day = moment.day
    for index in range(start - 1, target - 1, -1):
        if day <= 28:
            break
        day = min(day, calendar.monthrange(index // 12, index % 12 + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def _digits_to_int(digits: str) -> int:
    """Decimal digits as an integer. Python refuses to convert more than 4300 digits; no date or
    version has that many, so such text cannot be compared (rather than failing the request)."""
    try:
        return int(digits)
    except ValueError as error:
        raise Unmatchable from error


def parse_date_filter(value: Any, now: dt.datetime) -> dt.datetime:
    """A filter date: relative (`-7d`, `-1h`, `-2w`, `-3m`, `-1y`; N < 10000) or an ISO date."""
    text = str(value)
    relative = RELATIVE_DATE.search(text)
    if relative is None:
        return parse_datetime(text)
    number, unit = _digits_to_int(relative.group("number")), relative.group("unit")
    if number >= 10_000:
        raise Unmatchable
    if unit == "h":
        return now - dt.timedelta(hours=number)
    if unit == "d":
        return now - dt.timedelta(days=number)
    if unit == "w":
        return now - dt.timedelta(weeks=number)
    if unit == "m":
        return _months_earlier(now, number)
    if unit == "y":
        year = now.year - number
        if not 1 <= year <= 9999:
            raise Unmatchable
        leap_day = number > 0 and (now.month, now.day) == (2, 29)
        return now.replace(year=year, day=28 if leap_day else now.day)
    raise Unmatchable


def _compare_dates(operator: str, expected: Any, actual: Any, now: Callable[[], dt.datetime]) -> bool:
    if not isinstance(actual, str):
        raise Unmatchable
    bound = parse_date_filter(expected, now())
    moment = parse_datetime(actual)
    return moment < bound if operator == "is_date_before" else moment > bound


def _semver_part(part: str) -> int:
    """A numeric identifier; leading zeros are invalid (semver 2.0.0)."""
    if not part.isdigit() or not part.isascii() or (len(part) > 1 and part[0] == "0"):
        raise Unmatchable
    return _digits_to_int(part)


def parse_semver(value: Any) -> tuple[int, int, int]:
    """(major, minor, patch): `v` prefix stripped, pre-release/build dropped, missing parts 0."""
    text = str(value).strip().lstrip("vV").split("-")[0].split("+")[0]
    parts = text.split(".")
    major = _semver_part(parts[0])
    minor = _semver_part(parts[1]) if len(parts) > 1 and parts[1] else 0
    patch = _semver_part(parts[2]) if len(parts) > 2 and parts[2] else 0
    return major, minor, patch


def _semver_range(operator: str, value: Any) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    if operator == "semver_wildcard":
        parts = [
            part for part in str(value).strip().lstrip("vV").replace("*", "").rstrip(".").split(".") if part
        ]
        if not parts:
            raise Unmatchable
        numbers = [_semver_part(part) for part in parts[:3]]
        if len(numbers) == 1:
            return (numbers[0], 0, 0), (numbers[0] + 1, 0, 0)
        if len(numbers) == 2:
            return (numbers[0], numbers[1], 0), (numbers[0], numbers[1] + 1, 0)
        return (numbers[0], numbers[1], numbers[2]), (numbers[0], numbers[1], numbers[2] + 1)
    major, minor, patch = parse_semver(value)
    if operator == "semver_tilde":
        return (major, minor, patch), (major, minor + 1, 0)
    if major > 0:
        return (major, minor, patch), (major + 1, 0, 0)
    if minor > 0:
        return (major, minor, patch), (0, minor + 1, 0)
    return (major, minor, patch), (0, 0, patch + 1)


def _compare_semver(operator: str, expected: Any, actual: Any) -> bool:
    version = parse_semver(actual)
    if operator in SEMVER_RANGES:
        lower, upper = _semver_range(operator, expected)
        return lower <= version < upper
    bound = parse_semver(expected)
    return {
        "semver_eq": version == bound,
        "semver_neq": version != bound,
        "semver_gt": version > bound,
        "semver_gte": version >= bound,
        "semver_lt": version < bound,
        "semver_lte": version <= bound,
    }[operator]
