"""API scopes a personal API key can carry, as PostHog names them.

A scope is `*` or `<object>:<read|write>`. `:write` satisfies a `:read` requirement.
"""

API_SCOPE_OBJECTS: tuple[str, ...] = (
    "action",
    "activity_log",
    "annotation",
    "approvals",
    "batch_export",
    "cohort",
    "dashboard",
    "early_access_feature",
    "event_definition",
    "experiment",
    "experiment_saved_metric",
    "export",
    "feature_flag",
    "group",
    "insight",
    "notebook",
    "organization",
    "organization_member",
    "person",
    "project",
    "property_definition",
    "query",
    "session_recording",
    "sharing_configuration",
    "survey",
    "user",
    "webhook",
)

API_SCOPE_ACTIONS: tuple[str, ...] = ("read", "write")

ALL_SCOPES: tuple[str, ...] = tuple(f"{obj}:{act}" for obj in API_SCOPE_OBJECTS for act in API_SCOPE_ACTIONS)


def is_valid_scope(scope: object) -> bool:
    if scope == "*":
        return True
    if not isinstance(scope, str) or scope.count(":") != 1:
        return False
    scope_object, action = scope.split(":")
    return scope_object in API_SCOPE_OBJECTS and action in API_SCOPE_ACTIONS


def scopes_grant(granted: list[str], required: str) -> bool:
    """Whether a key with `granted` scopes satisfies one `required` scope."""
    if "*" in granted or required in granted:
        return True
    scope_object, action = required.split(":")
    return action == "read" and f"{scope_object}:write" in granted
