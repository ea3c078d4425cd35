"""Building response bodies directly from model instances.

List endpoints render up to a thousand objects per request; DRF's field-by-field machinery costs
far more than the data. Serializers keep describing the shape (for validation and the OpenAPI
schema) and delegate rendering to these functions, so there is one rendering per resource and it
is cheap. Responses are checked against the schema by the fuzzing suite and the API tests.
"""

from datetime import UTC, datetime


def api_datetime(value: datetime | None) -> str | None:
    """A datetime as DRF renders it (the server's time zone is UTC): ISO 8601 with `Z`."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    rendered = value.isoformat()
    return rendered[:-6] + "Z" if rendered.endswith("+00:00") else rendered
