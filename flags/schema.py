"""The OpenAPI operation of `GET …/feature_flags/{id}/remote_config/`.

The endpoint is a plain Django view (a project secret key is no user, see flags/remote_config.py),
which drf-spectacular does not see, so this postprocessing hook adds it to the generated document:
path, operation id, path parameters, tag and scope as PostHog's published document has them, with
what this server adds to it (the key accepted for `id`, the `token` query parameter the SDKs send,
the body of each answer). It runs before the hook that adds the error answers every operation has.
"""

import copy
from typing import Any

ONE_FLAG_PREFIX = "/api/projects/{project_id}/feature_flags/{id}/"
REMOTE_CONFIG_PATH = ONE_FLAG_PREFIX + "remote_config/"
EMPTY_NOT_FOUND = {"type": "string", "maxLength": 0}
REMOTE_CONFIG_OPERATION: dict[str, Any] = {
    "operationId": "feature_flags_remote_config_retrieve",
    "summary": "A remote-config flag's payload",
    "description": (
        "The `true` payload of a remote-config flag (`is_remote_configuration`), as the JSON text it "
        "is stored as (a JSON string), decrypted when the flag's payloads are encrypted; `null` when "
        "it has none. What PostHog's server SDKs call (posthog-python `get_remote_config_payload`, "
        "posthog-node `getRemoteConfigPayload`). Authenticate with a personal API key with "
        "`feature_flag:read` or with the project's secret API key (`phs_…`)."
    ),
    "parameters": [
        {
            "in": "path",
            "name": "id",
            "schema": {"type": "integer"},
            "description": (
                "A unique integer value identifying this feature flag. The flag's key is accepted "
                "too (the SDKs send the key)."
            ),
            "required": True,
        },
        {
            "in": "path",
            "name": "project_id",
            "schema": {"type": "string", "pattern": "^[^/]+$"},
            "description": (
                "Project ID of the project you're trying to access, or `@current`: the project of "
                "`token`, else the personal API key's current project."
            ),
            "required": True,
        },
        {
            "in": "query",
            "name": "token",
            "schema": {"type": "string"},
            "description": "The project's public API token (`phc_…`), as the SDKs send it; read with `@current`.",
            "required": False,
        },
    ],
    "tags": ["feature_flags"],
    "security": [{"PersonalAPIKeyAuth": ["feature_flag:read"]}],
    "responses": {
        "200": {
            "description": "The payload as JSON text, or null",
            "content": {"application/json": {"schema": {"type": "string", "nullable": True}}},
        },
        "404": {
            "description": (
                "The flag is missing, deleted or not a remote config (an empty body, as PostHog), or "
                "the project is not found (the error format)"
            ),
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}},
                "text/html": {"schema": EMPTY_NOT_FOUND},
            },
        },
    },
}


def add_remote_config_operation(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """Document the remote-config endpoint after the other operations on one feature flag."""
    paths = list(result.setdefault("paths", {}).items())
    one_flag = [index for index, (path, _) in enumerate(paths) if path.startswith(ONE_FLAG_PREFIX)]
    position = one_flag[-1] + 1 if one_flag else len(paths)
    paths.insert(position, (REMOTE_CONFIG_PATH, {"get": copy.deepcopy(REMOTE_CONFIG_OPERATION)}))
    result["paths"] = dict(paths)
    return result
