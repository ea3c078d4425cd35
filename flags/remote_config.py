"""`GET /api/projects/{id|@current}/feature_flags/{key|id}/remote_config`: a remote-config flag's config.

A remote-config flag is a boolean flag whose `true` payload is a configuration for servers. Server
SDKs (posthog-python `get_remote_config_payload`, posthog-node `getRemoteConfigPayload`) read it here
with `?token=<phc_…>` and a secret bearer, authenticated as the local-evaluation definitions are (a
personal API key with `feature_flag:read`, or the project's secret API key `phs_…`). The answer is
the payload's JSON text as a JSON string (`null` when it has none), decrypted when the flag's
payloads are encrypted. As PostHog, a missing flag and a flag that is not remote config are a 404
with an empty body.

A plain Django view, like the other SDK endpoints: a project secret key is not a user, so the
management API's authentication and project scoping do not apply.
"""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from accounts.authentication import PersonalAPIKeyAuthentication
from accounts.models import Project
from accounts.scoping import CURRENT, PROJECT_NOT_FOUND
from accounts.services import PROJECT_SECRET_API_KEY_PREFIX
from experiments_api.errors import json_error_response
from experiments_api.ids import id_from_text
from flags.delivery import (
    INVALID_SECRET_KEY,
    MISSING_DEFINITIONS_TOKEN,
    definitions_reader_project,
    secret_read_bearer,
)
from flags.models import FeatureFlag
from flags.payload_encryption import plain_filters


class RemoteConfigRefused(Exception):
    """The request names no project this secret may read; `response` answers it."""

    def __init__(self, response: HttpResponse) -> None:
        super().__init__(response.status_code)
        self.response = response


def unauthenticated(code: str, detail: str) -> RemoteConfigRefused:
    return RemoteConfigRefused(json_error_response(401, "authentication_error", code, detail))


# Exempt from CSRF as every bearer-authenticated SDK view is: it reads no cookie or session, and
# another method than GET is its own 405, not a CSRF refusal.
@csrf_exempt
def remote_config_view(request: HttpRequest, project_id: str, flag_ref: str) -> HttpResponse:
    secret = secret_read_bearer(request)
    if isinstance(secret, HttpResponse):
        return secret
    try:
        token = remote_config_token(project_id, token=request.GET.get("token", "").strip(), secret=secret)
    except RemoteConfigRefused as refusal:
        return refusal.response
    project = definitions_reader_project(secret, token)
    if isinstance(project, HttpResponse):
        return project

    flag = remote_config_flag(project_id=project.id, flag_ref=flag_ref)
    if flag is None or not flag.is_remote_configuration:
        return HttpResponse(status=404)
    payloads = plain_filters(flag.filters or {}, encrypted=flag.has_encrypted_payloads).get("payloads") or {}
    return JsonResponse(payloads.get("true") or None, safe=False)


def remote_config_token(raw_project_id: str, *, token: str, secret: str) -> str:
    """The public token of the project the URL names: an id, or `@current` — the project of the
    `token` query parameter (as the SDKs send it), else the personal API key's user's current
    project."""
    if raw_project_id != CURRENT:
        project_id = id_from_text(raw_project_id)
        api_token = (
            Project.objects.filter(pk=project_id).values_list("api_token", flat=True).first()
            if project_id is not None
            else None
        )
        if api_token is None:
            raise RemoteConfigRefused(
                json_error_response(404, "invalid_request", "not_found", PROJECT_NOT_FOUND)
            )
        token = api_token
    elif not token:
        if secret.startswith(PROJECT_SECRET_API_KEY_PREFIX):
            raise unauthenticated("authentication_failed", MISSING_DEFINITIONS_TOKEN)
        key = PersonalAPIKeyAuthentication.lookup(secret)
        if key is None:
            raise unauthenticated("authentication_failed", INVALID_SECRET_KEY)
        current = key.user.current_project_id
        token = Project.objects.filter(pk=current).values_list("api_token", flat=True).first() or ""
        if not token:
            raise RemoteConfigRefused(
                json_error_response(404, "invalid_request", "not_found", PROJECT_NOT_FOUND)
            )
    return token


def remote_config_flag(*, project_id: int, flag_ref: str) -> FeatureFlag | None:
    """The project's live flag with this id (all ASCII digits) or key."""
    flags = FeatureFlag.objects.filter(project_id=project_id, deleted=False)
    if flag_ref.isascii() and flag_ref.isdigit():
        flag_id = id_from_text(flag_ref)
        return flags.filter(pk=flag_id).first() if flag_id is not None else None
    return flags.filter(key=flag_ref).first()
