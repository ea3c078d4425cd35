"""Personal API key authentication, as PostHog's `PersonalAPIKeyAuthentication`.

The key is looked for in the Authorization header (`Bearer <key>`), then the body field
`personal_api_key`, then the query string; only the first one found is tried. A key that is found
but unknown, or whose user is inactive, is a 401 naming where it was found.
"""

import hmac
import re
from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts.identity import key_used, key_with_access, project_id_from_url
from accounts.models import PersonalAPIKey, User
from accounts.services import personal_api_key_digest
from experiments_api.serializers import PERSONAL_API_KEY_FIELD

BEARER_PATTERN = re.compile(r"^\s*Bearer\s+(\S.*?)\s*$", re.IGNORECASE)
LAST_USED_WRITE_INTERVAL = timedelta(hours=1)


def find_personal_api_key(request: Request) -> tuple[str, str] | None:
    """Return (secret, source) for the first key-shaped credential in the request, if any."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    match = BEARER_PATTERN.match(header)
    if match:
        token = match.group(1)
        # Project secret keys (phs_) and other bearer tokens are not personal API keys.
        if not token.startswith("phs_"):
            return token, "Authorization header"
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        data = request.data
        if isinstance(data, dict) and isinstance(data.get(PERSONAL_API_KEY_FIELD), str):
            return data[PERSONAL_API_KEY_FIELD], "body"
    query_value = request.query_params.get(PERSONAL_API_KEY_FIELD)
    if query_value:
        return query_value, "query string"
    return None


class PersonalAPIKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[User, PersonalAPIKey] | None:
        found = find_personal_api_key(request)
        if found is None:
            return None
        secret, source = found
        url_kwargs = (getattr(request, "parser_context", None) or {}).get("kwargs") or {}
        project_id = project_id_from_url(url_kwargs.get("project_id"))
        digest = personal_api_key_digest(secret)
        # Read already by a fast path (`accounts.fast_reads`) that handed the request on?
        known = getattr(request._request, "personal_api_key_found", None)
        found_key = known[2] if known is not None and known[:2] == (digest, project_id) else None
        if found_key is None:
            found_key = key_with_access(digest, project_id)
        if found_key is None or not hmac.compare_digest(found_key[0].secure_value, digest):
            raise exceptions.AuthenticationFailed(f"Personal API key found in request {source} is invalid.")
        key, access = found_key
        # Read in the same statement as the key: the project scoping uses it instead of asking again.
        request.project_access = access
        self.touch(key)
        return key.user, key

    @staticmethod
    def lookup(secret: str) -> PersonalAPIKey | None:
        digest = personal_api_key_digest(secret)
        found = key_with_access(digest, None)
        if found is None or not hmac.compare_digest(found[0].secure_value, digest):
            return None
        return found[0]

    @staticmethod
    def touch(key: PersonalAPIKey) -> None:
        """Record use at most once an hour, so authentication stays one read on the hot path."""
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_WRITE_INTERVAL:
            PersonalAPIKey.objects.filter(pk=key.pk).update(last_used_at=now)
            key.last_used_at = now
            key_used(key.secure_value, now)

    def authenticate_header(self, request: Request) -> str:
        return self.keyword
