"""Serializer conventions shared by every app."""

from typing import Any

from rest_framework import serializers
from rest_framework.request import Request

from accounts.authentication import PERSONAL_API_KEY_FIELD

UNKNOWN_FIELD = "Unknown field."
CONSUMED_FIELDS = (PERSONAL_API_KEY_FIELD, "csrfmiddlewaretoken")


class StrictFieldsMixin:
    """Reject keys the serializer does not know instead of silently ignoring them.

    Read-only fields are accepted (and ignored) so a client can send back an object it read, as
    PostHog's clients do when they edit an experiment or a flag. So is `personal_api_key`: it is the
    credential, which may travel in the body, and authentication has already consumed it; and so is
    the browsable API's `csrfmiddlewaretoken`, which Django's CSRF check has already consumed.
    """

    fields: Any
    initial_data: Any

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(
                str(key) for key in data if key not in self.fields and key not in CONSUMED_FIELDS
            )
            if unknown:
                raise serializers.ValidationError({unknown[0]: [UNKNOWN_FIELD]}, code="unknown_field")
        return super().to_internal_value(data)


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


class ActionBodySerializer(StrictFieldsMixin, ObjectBodySerializer):
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
