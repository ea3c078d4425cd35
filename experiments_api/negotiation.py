"""Which parser reads a request body, with the mistakes clients make answered in plain words.

- JSON sent without a `Content-Type`, or as a form (curl's `-d` default), is a 400 that says to send
  `Content-Type: application/json`, instead of an unknown-field or missing-field error about keys
  made of JSON text.
- PUT takes JSON only (415): it replaces the object, and a form cannot say `false`, so a form PUT
  that leaves out a boolean would switch it off. Forms work with POST and PATCH.
"""

from django.http.request import RawPostDataException
from rest_framework.exceptions import ParseError, UnsupportedMediaType
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request

JSON_MEDIA_TYPE = "application/json"
FORM_MEDIA_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
JSON_WITHOUT_CONTENT_TYPE = (
    "The request body has no Content-Type. Send JSON with the header `Content-Type: application/json`."
)
JSON_SENT_AS_FORM = (
    "The request body is JSON but was sent as a form ({media_type}). Send it with the header "
    "`Content-Type: application/json`."
)
PUT_TAKES_JSON = (
    "PUT replaces the whole object and takes JSON only (`Content-Type: application/json`); "
    "send a form with PATCH or POST."
)


def looks_like_json(request: Request) -> bool:
    try:
        body = request._request.body
    except RawPostDataException:
        # Already read as a stream (a multipart upload): it was not JSON text.
        return False
    return body.lstrip()[:1] in (b"{", b"[")


class ApiContentNegotiation(DefaultContentNegotiation):
    def select_parser(self, request: Request, parsers: list) -> object | None:
        media_type = (request.content_type or "").split(";")[0].strip().lower()
        if not media_type:
            raise ParseError(JSON_WITHOUT_CONTENT_TYPE)
        if media_type in FORM_MEDIA_TYPES:
            if request.method == "PUT":
                raise UnsupportedMediaType(media_type, detail=PUT_TAKES_JSON)
            if media_type == FORM_MEDIA_TYPES[0] and looks_like_json(request):
                raise ParseError(JSON_SENT_AS_FORM.format(media_type=media_type))
        return super().select_parser(request, parsers)
