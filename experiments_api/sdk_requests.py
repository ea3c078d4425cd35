"""What every endpoint PostHog's SDKs call shares: reading the body and answering browsers.

Bodies are JSON, possibly gzip- or deflate-compressed, possibly form-encoded as
`data=<JSON or base64 JSON>` (older posthog-js). Decompression is bounded, so a small compressed body
cannot expand into unbounded memory. Used by event intake (`events`) and flag delivery (`flags`),
which stand beside each other and so share it from here.
"""

import base64
import binascii
import json
import zlib
from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qs

from django.http import HttpRequest, HttpResponse, QueryDict

from experiments_api.parsers import structure_problem

# Where a body names its project token (`phc_…`), in the order they are tried.
PROJECT_TOKEN_FIELDS = ("api_key", "token", "$token")
GZIP_MAGIC = b"\x1f\x8b"
GZIP_COMPRESSION_NAMES = ("gzip", "gzip-js")
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


# Query strings whose parameters one process keeps; SDKs send the same few over and over.
QUERY_STRINGS_HELD = 256


def query_parameters(request: HttpRequest) -> Mapping[str, str]:
    """The request's query parameters, the last value of each, as `request.GET.get` reads them:
    parsed once per process for each query string instead of on every request."""
    return _parsed_query(request.META.get("QUERY_STRING", ""))


@lru_cache(maxsize=QUERY_STRINGS_HELD)
def _parsed_query(query_string: str) -> Mapping[str, str]:
    # Encoded as `WSGIRequest.GET` encodes the WSGI string before parsing it.
    return MappingProxyType(dict(QueryDict(query_string.encode("iso-8859-1")).items()))


class PayloadError(ValueError):
    """The body cannot be read as an SDK payload; the message says why, for a 400."""


class PayloadTooLarge(PayloadError):
    """The body (or what it decompresses to) is over the limit, for a 413."""


def read_body(request: HttpRequest, limit: int) -> bytes:
    """The raw body, at most `limit` bytes (Content-Length was already checked by the middleware)."""
    body = request.read(limit + 1)
    if len(body) > limit:
        raise PayloadTooLarge(f"Request body is too large: the limit is {limit} bytes.")
    return body


def _inflate(data: bytes, limit: int, wbits: int) -> bytes:
    decompressor = zlib.decompressobj(wbits=wbits)
    try:
        inflated = decompressor.decompress(data, limit + 1)
    except zlib.error as error:
        raise PayloadError(f"Failed to decompress request body: {error}") from error
    if len(inflated) > limit or decompressor.unconsumed_tail:
        raise PayloadTooLarge(f"Decompressed request body is too large: the limit is {limit} bytes.")
    return inflated


def decompress(request: HttpRequest, body: bytes, limit: int) -> bytes:
    """Undo gzip (header, `?compression=gzip[-js]` or magic bytes) or deflate compression."""
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    compression = query_parameters(request).get("compression", "").strip().lower()
    if encoding == "gzip" or compression in GZIP_COMPRESSION_NAMES or body.startswith(GZIP_MAGIC):
        return _inflate(body, limit, wbits=16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return _inflate(body, limit, wbits=zlib.MAX_WBITS)
    return body


def _form_data(request: HttpRequest, body: bytes) -> bytes | None:
    """The `data` field of a form-encoded body, base64-decoded when it is not plain JSON."""
    is_form = request.content_type == FORM_CONTENT_TYPE or body.startswith(b"data=")
    if not is_form:
        return None
    fields = parse_qs(body.decode("utf-8", errors="replace"))
    data = (fields.get("data") or [""])[0].strip()
    if not data:
        raise PayloadError("Form-encoded body has no data field.")
    if data[:1] in ("{", "["):
        return data.encode()
    try:
        return base64.b64decode(data + "=" * (-len(data) % 4))
    except (binascii.Error, ValueError) as error:
        raise PayloadError("The data field is neither JSON nor base64.") from error


def parse_json(data: bytes) -> Any:
    """JSON with NaN and ±Infinity read as null, as PostHog's services tolerate them."""
    try:
        parsed = json.loads(data, parse_constant=lambda _constant: None)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise PayloadError(f"Invalid JSON: {error}") from error
    problem = structure_problem(parsed)
    if problem:
        raise PayloadError(problem)
    return parsed


def decode_payload(request: HttpRequest, body: bytes, limit: int) -> Any:
    """The JSON value an SDK sent in `body`, whatever encoding it used."""
    data = decompress(request, body, limit)
    form = _form_data(request, data)
    if form is not None:
        data = decompress(request, form, limit) if form.startswith(GZIP_MAGIC) else form
    if not data.strip():
        raise PayloadError("Request body is empty.")
    return parse_json(data)


def with_sdk_cors(response: HttpResponse) -> HttpResponse:
    """Browsers (posthog-js) call the SDK endpoints from any site; the project token is public."""
    response["Access-Control-Allow-Origin"] = "*"
    response["Access-Control-Allow-Headers"] = "Content-Type, Content-Encoding"
    return response
