"""Serializer conventions shared by every app."""

from typing import Any

from rest_framework import exceptions, serializers
from rest_framework.fields import empty
from rest_framework.request import Request

from experiments_api.handling import WHOLE_BODY, current_handling

UNKNOWN_FIELD = "Unknown field."
NOT_SUPPORTED = "This server does not support other values of this field."
# The body or query field that may carry the personal API key (PostHog's name); authentication reads it.
PERSONAL_API_KEY_FIELD = "personal_api_key"
CONSUMED_FIELDS = (PERSONAL_API_KEY_FIELD, "csrfmiddlewaretoken")


class UnknownFieldHandlingMixin:
    """Unknown keys are handled as the request's handling asks: by default ignored and named in the
    `Ignored-Fields` header, as PostHog ignores them; under `Prefer: handling=strict` refused with a
    400 naming the first one.

    Read-only fields are known, so a client can send back an object it read, as PostHog's clients
    do when they edit an experiment or a flag. `personal_api_key` is the credential, which may travel
    in the body, and authentication has already consumed it; the browsable API's
    `csrfmiddlewaretoken` has been consumed by Django's CSRF check: neither is reported.
    """

    fields: Any
    initial_data: Any
    # Fields PostHog's document declares that this server has nothing behind, with the values it
    # holds for every object. They are read-only here; any other value sent is ignored like an
    # unknown field (named in the header, or refused under strict handling).
    inert_fields: dict[str, tuple[Any, ...]] = {}

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        for field in fields.values():
            if isinstance(field, serializers.BooleanField):
                # In a form, DRF reads a boolean left out as false (an HTML checkbox convention), so
                # a form that does not mention `active` would switch a flag off; here it is not given.
                field.default_empty_html = empty
        return fields

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(
                str(key) for key in data if key not in self.fields and key not in CONSUMED_FIELDS
            )
            handling = current_handling()
            if unknown and handling.strict:
                raise serializers.ValidationError({unknown[0]: [UNKNOWN_FIELD]}, code="unknown_field")
            for name in unknown:
                handling.ignore(field_path(self, name))
            for name, held in self.inert_fields.items():
                if name in data and not any(
                    data[name] == value and type(data[name]) is type(value) for value in held
                ):
                    if handling.strict:
                        raise serializers.ValidationError({name: [NOT_SUPPORTED]}, code="not_supported")
                    handling.ignore(field_path(self, name))
        return super().to_internal_value(data)


def field_path(serializer: Any, name: str) -> str:
    """`name` prefixed with the fields that lead to `serializer` when it is nested (`parent.child`)."""
    parts = [name]
    node = serializer
    while getattr(node, "parent", None) is not None:
        if node.field_name:
            parts.insert(0, node.field_name)
        node = node.parent
    return ".".join(parts)


class ObjectBodySerializer(serializers.Serializer):
    """A request body that must be a JSON object (not a list, string or null)."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                {
                    "non_field_errors": [
                        f"Invalid data. Expected a dictionary, but got {type(data).__name__}."
                    ]
                },
                code="invalid",
            )
        return super().to_internal_value(data)


class ActionBodySerializer(UnknownFieldHandlingMixin, ObjectBodySerializer):
    """The body of an action (`end/`, `approve/`, …): a JSON object holding only the declared fields
    (an empty body counts as `{}`)."""


class EmptyBodySerializer(ActionBodySerializer):
    """The body of an action that takes none: nothing, an empty body or `{}`."""


def validated_body(request: Request, serializer_class: type[ActionBodySerializer]) -> dict[str, Any]:
    """An action's body validated by `serializer_class`: a malformed body is a 400, a body of an
    unsupported media type a 415, and a list, string or null is refused rather than read as `{}`."""
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def body_of_bodyless_action(request: Request) -> None:
    """Check the body of an action that takes none. Under strict handling it must be absent, empty
    or `{}` (400, or 415 for another media type); otherwise it is ignored, as PostHog ignores it,
    and what was in it is named in the `Ignored-Fields` header."""
    handling = current_handling()
    if handling.strict:
        validated_body(request, EmptyBodySerializer)
        return
    try:
        data = request.data
    except (exceptions.ParseError, exceptions.UnsupportedMediaType):
        handling.ignore(WHOLE_BODY)
        return
    if isinstance(data, dict):
        for name in sorted(str(key) for key in data if key not in CONSUMED_FIELDS):
            handling.ignore(name)
    elif data not in (None, "", b""):
        handling.ignore(WHOLE_BODY)
