"""OpenAPI generation: each operation lists the personal API key scopes it needs, as PostHog's does."""

from types import SimpleNamespace

from drf_spectacular.openapi import AutoSchema

from accounts.permissions import required_scopes_for

SECURITY_SCHEME = "PersonalAPIKeyAuth"


class ScopedAutoSchema(AutoSchema):
    def get_auth(self) -> list[dict[str, list[str]]]:
        if not getattr(self.view, "scope_object", None) and not getattr(self.view, "required_scopes", None):
            return []
        scopes = required_scopes_for(SimpleNamespace(method=self.method), self.view)
        return [{SECURITY_SCHEME: scopes}]
