"""Request body parsers that refuse what the database cannot store or the server should not walk:
NUL characters and unpaired surrogates (PostgreSQL text and jsonb reject both) and absurdly deep
nesting."""

import json
import re
from typing import Any

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils.json import strict_constant

MAX_JSON_DEPTH = 64
TOO_DEEP = f"JSON parse error - nesting deeper than {MAX_JSON_DEPTH} levels is not accepted."
NUL_NOT_ALLOWED = "Request body contains a NUL character, which cannot be stored."
LONE_SURROGATE_NOT_ALLOWED = (
    "Request body contains an unpaired UTF-16 surrogate (such as \\ud800), which is not valid Unicode."
)
# JSON's \uXXXX escapes can spell half of a surrogate pair; `json.loads` joins the halves of a
# proper pair into one character, so any surrogate left in a string stands alone.
SURROGATE = re.compile(r"[\ud800-\udfff]")


class JSONTooDeep(ValueError):
    """JSON text nested too deep to read: `json.loads` recurses once per level and would exhaust
    the stack (RecursionError)."""


def json_value(text: str | bytes) -> Any:
    """`text` read as JSON. Raises ValueError when it is not JSON (`JSONTooDeep` when it nests too
    deep to read)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise JSONTooDeep(TOO_DEEP) from None


def string_problem(text: str) -> str | None:
    if "\x00" in text:
        return NUL_NOT_ALLOWED
    if not text.isascii() and SURROGATE.search(text):
        return LONE_SURROGATE_NOT_ALLOWED
    return None


def structure_problem(data: Any) -> str | None:
    """Why parsed JSON cannot be accepted (too deep, or a NUL or a lone surrogate in a key or
    string), or None. Walks without recursion, so no input can exhaust the stack here."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            problem = string_problem(value)
            if problem:
                return problem
            continue
        if isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                return TOO_DEEP
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                problem = string_problem(key) if isinstance(key, str) else None
                if problem:
                    return problem
                stack.append((item, depth + 1))
    return None


def check_structure(data: Any) -> None:
    problem = structure_problem(data)
    if problem:
        raise ParseError(problem)


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        # NaN and ±Infinity are not JSON; DRF refuses them (STRICT_JSON) and so must we: a CharField
        # would store "nan", an id field would overflow and jsonb rejects them.
        parse_constant = strict_constant if self.strict else None
        try:
            text = stream.read().decode(encoding)
            data = json.loads(text, parse_constant=parse_constant)
        except RecursionError:
            raise ParseError(TOO_DEEP) from None
        except (ValueError, UnicodeDecodeError) as error:
            raise ParseError(f"JSON parse error - {error}") from None
        check_structure(data)
        return data


class FormParser(parsers.FormParser):
    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        data = super().parse(stream, media_type, parser_context)
        check_structure({key: data.getlist(key) for key in data})
        return data


class MultiPartParser(parsers.MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        result = super().parse(stream, media_type, parser_context)
        check_structure({key: result.data.getlist(key) for key in result.data})
        return result
