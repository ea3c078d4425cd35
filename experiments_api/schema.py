"""OpenAPI generation hooks: one path per operation, and the error envelope on every operation.
The schema class, which documents the scopes each operation needs, is `accounts.schema`."""

from experiments_api.routing import is_environment_alias


def without_environment_aliases(endpoints: list[tuple]) -> list[tuple]:
    """Document each project route once, under `/api/projects/{project_id}/`: the same operation
    under `/api/environments/{project_id}/` is an alias (said in the API description)."""
    return [endpoint for endpoint in endpoints if not is_environment_alias(endpoint[0])]


ERROR_ENVELOPE = {
    "type": "object",
    "description": "Every error: the type, the code and message of the first error, and the field it concerns.",
    "properties": {
        "type": {
            "type": "string",
            "enum": [
                "validation_error",
                "authentication_error",
                "invalid_request",
                "throttled_error",
                "server_error",
            ],
        },
        "code": {"type": "string"},
        "detail": {"type": "string"},
        "attr": {"type": "string", "nullable": True},
    },
    "required": ["type", "code", "detail", "attr"],
}
ACTION_ERROR = {
    "type": "object",
    "description": "A refused change-request action (approve, reject, cancel).",
    "properties": {"error": {"type": "string"}},
    "required": ["error"],
}
POLICY_CONFLICT = {
    "type": "object",
    "description": "One write matched several approval policies; nothing was written.",
    "properties": {
        "code": {"type": "string", "enum": ["policy_conflict"]},
        "error": {"type": "string"},
        "conflicting_policies": {"type": "array", "items": {"type": "object"}},
        "guidance": {"type": "string"},
    },
    "required": ["code", "error", "conflicting_policies"],
}
APPROVAL_REQUIRED = {
    "type": "object",
    "description": (
        "The write needs approval: nothing was written; a change request was stored (or an open one "
        "for the same action already exists, `code: change_request_pending`)."
    ),
    "properties": {
        "code": {"type": "string", "enum": ["approval_required", "change_request_pending"]},
        "status": {"type": "string"},
        "message": {"type": "string"},
        "detail": {"type": "string"},
        "error": {"type": "string"},
        "resource_type": {"type": "string"},
        "resource_id": {"type": "string", "nullable": True},
        "change_request_id": {"type": "string", "format": "uuid"},
        "change_request": {"type": "object"},
        "existing_change_request": {"type": "object"},
        "required_approvers": {"type": "object"},
    },
    "required": ["code", "resource_type", "change_request_id"],
}
ERROR_RESPONSES = {
    "400": "Invalid input, or a refused action",
    "401": "Missing or invalid credentials",
    "403": "The key lacks a scope, or the action is not allowed",
    "404": "Not found (including projects the caller cannot reach)",
    "413": "Request body too large",
    "415": "Unsupported media type",
    "429": "Rate limited for this key",
}
GATED_PATH_SEGMENTS = ("/experiments/", "/feature_flags/", "/experiment_holdouts/")
WRITE_METHODS = ("post", "put", "patch", "delete")


# Answered by gunicorn before the request reaches the application, so not in the error format.
URI_TOO_LONG = {
    "description": "Request line longer than the HTTP server accepts (8190 bytes by default)",
    "content": {"text/html": {"schema": {"type": "string"}}},
}


def json_content(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def add_error_responses(result: dict, generator, request, public) -> dict:
    """Document the error answers every operation can give (in the project's error format, except
    the HTTP server's 414), and the 409 of the approval gate on the writes it guards."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["ErrorResponse"] = ERROR_ENVELOPE
    schemas["ChangeRequestActionError"] = ACTION_ERROR
    schemas["PolicyConflict"] = POLICY_CONFLICT
    schemas["ApprovalRequired"] = APPROVAL_REQUIRED
    envelope = {"$ref": "#/components/schemas/ErrorResponse"}
    bad_request = {
        "anyOf": [
            envelope,
            {"$ref": "#/components/schemas/PolicyConflict"},
            {"$ref": "#/components/schemas/ChangeRequestActionError"},
        ]
    }
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for status, description in ERROR_RESPONSES.items():
                if status not in responses:
                    schema = bad_request if status == "400" else envelope
                    responses[status] = {"description": description, "content": json_content(schema)}
            responses.setdefault("414", URI_TOO_LONG)
            gated = method in WRITE_METHODS and any(segment in path for segment in GATED_PATH_SEGMENTS)
            if gated and "409" not in responses:
                responses["409"] = {
                    "description": "Approval required",
                    "content": json_content({"$ref": "#/components/schemas/ApprovalRequired"}),
                }
    return result
