"""OpenAPI generation: each operation lists the personal API key scopes it needs, as PostHog's does."""

from types import SimpleNamespace

from drf_spectacular.openapi import AutoSchema

from accounts.permissions import required_scopes_for
from experiments_api.negotiation import JSON_MEDIA_TYPE

SECURITY_SCHEME = "PersonalAPIKeyAuth"


class ScopedAutoSchema(AutoSchema):
    def map_parsers(self) -> list[str]:
        # PUT takes JSON only (see experiments_api/negotiation.py), so it advertises nothing else.
        media_types = super().map_parsers()
        return [JSON_MEDIA_TYPE] if self.method == "PUT" and JSON_MEDIA_TYPE in media_types else media_types

    def get_auth(self) -> list[dict[str, list[str]]]:
        if not getattr(self.view, "scope_object", None) and not getattr(self.view, "required_scopes", None):
            return []
        scopes = required_scopes_for(SimpleNamespace(method=self.method), self.view)
        return [{SECURITY_SCHEME: scopes}]
