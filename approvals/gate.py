"""The approval gate: `@approval_gate(...)` on every service function that performs a gated write.

A gated call runs inside a transaction while the services report what it changes
(`approvals/observer.py`). Before the transaction commits, the gate looks for the policy that
governs each change. If a policy requires approval, the transaction is rolled back — nothing is
written: not the experiment, not the flag, not an activity entry — and a change request recording
the call is stored instead; `ApprovalRequired` is raised (the API answers 409). Two policies
governing one call is a `PolicyConflict` (400) and writes nothing at all.

Applying an approved change request replays the recorded call as the requester, through the same
gate, with the approved policy satisfied; any other policy still gates it.
"""

import copy
import functools
import logging
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Any

from django.apps import apps
from django.db import connection, models, transaction
from django.utils import timezone

from accounts.models import OrganizationMembership, Project, User
from approvals.actions import gated_action
from approvals.conditions import conditions_match
from approvals.models import ApprovalPolicy, ChangeRequest
from approvals.observer import Facet, Recorder, current_recorder

POLICY_CONFLICT_MESSAGE = "This change matches multiple approval policies"
POLICY_CONFLICT_GUIDANCE = "Split your changes into separate API calls to address each policy independently"
DUPLICATE_MESSAGE = "A pending approval request already exists for this action"
PENDING_FROM_OTHERS = "A change request has been created and is pending approval from others."
PENDING = "A change request has been created and is pending approval."
RESOURCE_GONE = "Resource no longer exists"
RESOURCE_MODIFIED = "Resource has been modified since this change request was created"
NO_GATED_SERVICE = "The recorded call names no gated service"
NOT_CURRENT_FORMAT = "The recorded call is not in the current format"
UNKNOWN_ACTION_WARNING = (
    "Approval policy %s names the action %r, which no installed app registers: it gates nothing. "
    "Correct or delete it (admin: Approval policies)."
)

logger = logging.getLogger(__name__)


class ApprovalRequired(Exception):
    """A write needs approval. `change_request` is the stored request (new, or the open duplicate)."""

    def __init__(self, change_request: ChangeRequest, *, message: str, duplicate: bool = False) -> None:
        super().__init__(message)
        self.change_request = change_request
        self.message = message
        self.duplicate = duplicate


class PolicyConflict(Exception):
    """One write is governed by more than one policy; split it into separate calls."""

    def __init__(self, policies: list[ApprovalPolicy]) -> None:
        super().__init__(POLICY_CONFLICT_MESSAGE)
        self.policies = policies


class ApplyBlocked(Exception):
    """Replaying an approved change request would need another policy's approval."""


@dataclass(frozen=True)
class GatedService:
    """A service function the gate wraps, and how to find its project and primary resource."""

    name: str
    function: Callable[..., Any]
    resource_type: str
    resource: Callable[[dict[str, Any]], models.Model | None]
    project: Callable[[dict[str, Any]], Project]
    flag_action_keys: Callable[[dict[str, Any]], dict[str, list[str]]]


GATED_SERVICES: dict[str, GatedService] = {}


@dataclass
class ApplyContext:
    approved_policy_id: str


current_apply: ContextVar[ApplyContext | None] = ContextVar("approval_apply", default=None)
# The organization a running gated call found without policies: the gated calls it makes (a create
# creating its flag) are part of the same write, so they do not ask again.
ungated_organization: ContextVar[Any] = ContextVar("ungated_organization", default=None)


# --- recording a call as plain JSON ----------------------------------------------------------
#
# A change request stores the call's arguments as the JSON they are, and, beside them, the list of
# places where the server itself put a value that is not JSON (a model, a datetime). Only those
# places are turned back into objects on replay; the values a requester sent are never decoded, so
# a body carrying `{"$model": ...}` or `{"$datetime": ...}` stays that plain dict.


class ReplayError(Exception):
    """The recorded call cannot be rebuilt (a model outside the request's project, an unreadable value)."""


def record_arguments(kwargs: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The call's keyword arguments as plain JSON, and the typed places in them: each has a `path`
    (keys and list indexes from the top) and a `type`; a model's place holds its primary key and
    names its model."""
    typed: list[dict[str, Any]] = []

    def plain(value: Any, path: list[str | int]) -> Any:
        if isinstance(value, models.Model):
            typed.append({"path": path, "type": "model", "model": value._meta.label})
            return value.pk
        if isinstance(value, datetime):
            typed.append({"path": path, "type": "datetime"})
            return value.isoformat()
        if isinstance(value, date):
            typed.append({"path": path, "type": "date"})
            return value.isoformat()
        if isinstance(value, Decimal):
            typed.append({"path": path, "type": "decimal"})
            return str(value)
        if isinstance(value, uuid.UUID):
            typed.append({"path": path, "type": "uuid"})
            return str(value)
        if isinstance(value, dict):
            return {str(key): plain(item, [*path, str(key)]) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [plain(item, [*path, index]) for index, item in enumerate(value)]
        return value

    return plain(kwargs, []), typed


def load_project_model(label: Any, pk: Any, project: Project) -> models.Model:
    """A model the request's project owns, by primary key; nothing from another tenant, and no
    model that does not belong to a project."""
    try:
        model = apps.get_model(str(label))
    except (LookupError, ValueError) as error:
        raise ReplayError(f"Unknown model {label!r}") from error
    if model is Project:
        if pk != project.pk:
            raise ReplayError("The recorded project is not the change request's project")
        return Project.objects.get(pk=project.pk)
    if not any(field.name == "project" for field in model._meta.get_fields()):
        raise ReplayError(f"{model._meta.label} is not a project resource")
    if not isinstance(pk, int | str) or isinstance(pk, bool):
        raise ReplayError(f"Unreadable id for {model._meta.label}")
    return model._default_manager.get(pk=pk, project=project)


VALUE_RESTORERS: dict[str, Callable[[Any], Any]] = {
    "datetime": datetime.fromisoformat,
    "date": date.fromisoformat,
    "decimal": Decimal,
    "uuid": uuid.UUID,
}
RECORDED_TYPES = {"model", *VALUE_RESTORERS}


def restore_value(typed: dict[str, Any], value: Any, project: Project) -> Any:
    kind = typed["type"]
    try:
        if kind == "model":
            return load_project_model(typed.get("model"), value, project)
        return VALUE_RESTORERS[kind](value)
    except (TypeError, ValueError, ArithmeticError) as error:
        raise ReplayError(f"Unreadable recorded {kind} value") from error


def recording_problem(intent: Any) -> str | None:
    """Why a change request's recorded call can never be replayed, whatever becomes of its target:
    it names no gated service of this server, or it is not in the current recording format (the
    tagged format of requests made before calls were recorded as plain JSON beside their typed
    places, or a recording edited by hand). None when it can be replayed."""
    if not isinstance(intent, dict) or intent.get("service") not in GATED_SERVICES:
        return NO_GATED_SERVICE
    arguments, argument_types = intent.get("arguments"), intent.get("argument_types")
    if not isinstance(arguments, dict) or not isinstance(argument_types, list):
        return NOT_CURRENT_FORMAT
    for typed in argument_types:
        path = typed.get("path") if isinstance(typed, dict) else None
        if not isinstance(path, list) or not path or typed.get("type") not in RECORDED_TYPES:
            return NOT_CURRENT_FORMAT
        place: Any = arguments
        for step in path:
            if not isinstance(place, dict | list):
                return NOT_CURRENT_FORMAT
            try:
                place = place[step]
            except (KeyError, IndexError, TypeError):
                return NOT_CURRENT_FORMAT
    return None


def replay_arguments(
    arguments: dict[str, Any], argument_types: list[Any], *, project: Project
) -> dict[str, Any]:
    """The recorded keyword arguments of a recording `recording_problem` accepts, with the
    server's typed places restored (models re-read from `project`, raising ObjectDoesNotExist when
    gone)."""
    rebuilt = copy.deepcopy(arguments)
    for typed in argument_types:
        *parents, last = typed["path"]
        container = rebuilt
        for step in parents:
            container = container[step]
        container[last] = restore_value(typed, container[last], project)
    return rebuilt


def preconditions_of(resource: models.Model | None) -> dict[str, Any]:
    """What must not have changed when the request is applied: the resource's version or last
    update, and for an experiment also its flag's version."""
    if resource is None or resource.pk is None:
        return {}
    fresh = type(resource)._default_manager.filter(pk=resource.pk).first()
    if fresh is None:
        return {}
    result: dict[str, Any] = {"model": fresh._meta.label, "pk": fresh.pk}
    if hasattr(fresh, "version"):
        result["version"] = fresh.version
    if hasattr(fresh, "updated_at"):
        result["updated_at"] = fresh.updated_at.isoformat()
    if hasattr(fresh, "feature_flag"):
        result["feature_flag_version"] = fresh.feature_flag.version
    return result


def stale_reason(preconditions: dict[str, Any]) -> str | None:
    """Why the resource no longer matches the request's preconditions, or None."""
    if not preconditions:
        return None
    current = preconditions_of(
        apps.get_model(preconditions["model"])._default_manager.filter(pk=preconditions["pk"]).first()
    )
    if not current:
        return RESOURCE_GONE
    for key in ("version", "updated_at", "feature_flag_version"):
        if key in preconditions and current.get(key) != preconditions[key]:
            return RESOURCE_MODIFIED
    return None


# --- deciding ----------------------------------------------------------------------------------


@dataclass
class Decision:
    policy: ApprovalPolicy | None = None
    facets: list[Facet] = field(default_factory=list)
    conflict: list[ApprovalPolicy] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        return bool(self.conflict) or self.policy is not None


@cache
def _policies_exist_statement() -> str:
    quote = connection.ops.quote_name
    return (
        f"SELECT EXISTS (SELECT 1 FROM {quote(ApprovalPolicy._meta.db_table)} "
        f"WHERE {quote('organization_id')} = %s AND {quote('enabled')})"
    )


def organization_has_policies(organization_id: Any) -> bool:
    """Whether the organization has an enabled policy. Every gated write asks first, so the
    statement is written out once per process instead of built by the ORM each time."""
    with connection.cursor() as cursor:
        cursor.execute(_policies_exist_statement(), [organization_id])
        return cursor.fetchone()[0]


def membership_level(user: User | None, organization_id: Any) -> int | None:
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return (
        OrganizationMembership.objects.filter(user=user, organization_id=organization_id)
        .values_list("level", flat=True)
        .first()
    )


def has_bypass(policy: ApprovalPolicy, level: int | None) -> bool:
    levels = set()
    for raw in policy.bypass_org_membership_levels or []:
        try:
            levels.add(int(raw))
        except (TypeError, ValueError):
            continue
    return level is not None and level in levels


# Policies already warned about in this process, so a policy polled on every gated write is
# logged once, not once per write.
_warned_unknown_action_policies: set[tuple[Any, str]] = set()


def gating_policies(project: Project) -> list[ApprovalPolicy]:
    """The enabled policies that may gate a write to `project` (its own and its organization's).
    A policy naming an action no installed app registers (made by hand, or its app removed since)
    gates nothing: it is left out, and a warning is logged once per process."""
    policies = []
    for policy in ApprovalPolicy.objects.filter(organization_id=project.organization_id, enabled=True).filter(
        models.Q(project__isnull=True) | models.Q(project=project)
    ):
        if gated_action(policy.action_key) is not None:
            policies.append(policy)
        elif (policy.pk, policy.action_key) not in _warned_unknown_action_policies:
            _warned_unknown_action_policies.add((policy.pk, policy.action_key))
            logger.warning(UNKNOWN_ACTION_WARNING, policy.pk, policy.action_key)
    return policies


def decide(facets: list[Facet], *, project: Project, user: User | None) -> Decision:
    """Find the policy governing each facet; more than one policy is a conflict; otherwise the
    policy requires approval unless the user may bypass it or its conditions do not select the change."""
    if not facets:
        return Decision()
    policies = gating_policies(project)
    governing: dict[Any, tuple[ApprovalPolicy, list[Facet]]] = {}
    conflicts: list[ApprovalPolicy] = []
    for facet in facets:
        for key in facet.action_keys:
            project_level = [policy for policy in policies if policy.action_key == key and policy.project_id]
            org_level = [policy for policy in policies if policy.action_key == key and not policy.project_id]
            if not project_level and not org_level:
                continue
            policy = (project_level or org_level)[0]
            matching = [
                item
                for item in project_level + org_level
                if conditions_match(item.conditions, facet.intent())
            ]
            if len(matching) > 1:
                conflicts.extend(matching)
            governing.setdefault(policy.pk, (policy, []))[1].append(facet)
            break
    distinct = [policy for policy, _ in governing.values()]
    if conflicts or len(distinct) > 1:
        unique = {policy.pk: policy for policy in [*distinct, *conflicts]}
        return Decision(conflict=list(unique.values()))
    if not distinct:
        return Decision()
    policy, governed = next(iter(governing.values()))
    apply_context = current_apply.get()
    if apply_context is not None and str(policy.pk) == apply_context.approved_policy_id:
        return Decision()
    if has_bypass(policy, membership_level(user, project.organization_id)):
        return Decision()
    if not any(conditions_match(policy.conditions, facet.intent()) for facet in governed):
        return Decision()
    return Decision(policy=policy, facets=governed)


class Blocked(Exception):
    """Internal: unwinds the gated call's transaction."""

    def __init__(self, decision: Decision) -> None:
        super().__init__("blocked by approval policy")
        self.decision = decision


# --- the decorator -----------------------------------------------------------------------------


def approval_gate(
    *,
    name: str,
    resource_type: str,
    resource: Callable[[dict[str, Any]], models.Model | None],
    project: Callable[[dict[str, Any]], Project],
    flag_action_keys: Callable[[dict[str, Any]], dict[str, list[str]]] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Gate a keyword-only service function. `resource` and `project` read the call's primary
    resource and project from its keyword arguments; `flag_action_keys` names the experiment-level
    key that governs a flag change made by this call before the `feature_flag.*` key does."""

    def decorator(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def gated(**kwargs: Any) -> Any:
            if current_recorder.get() is not None:
                return function(**kwargs)
            call_project = project(kwargs)
            organization_id = call_project.organization_id
            if current_apply.get() is None:
                if ungated_organization.get() == organization_id:
                    return function(**kwargs)
                if not organization_has_policies(organization_id):
                    token = ungated_organization.set(organization_id)
                    try:
                        return function(**kwargs)
                    finally:
                        ungated_organization.reset(token)
            service = GATED_SERVICES[name]
            preconditions = preconditions_of(resource(kwargs))
            recorder = Recorder(flag_action_keys=(flag_action_keys or (lambda _: {}))(kwargs))
            token = current_recorder.set(recorder)
            try:
                with transaction.atomic():
                    result = function(**kwargs)
                    decision = decide(recorder.facets, project=call_project, user=kwargs.get("user"))
                    if decision.blocked:
                        raise Blocked(decision)
                return result
            except Blocked as blocked:
                decision = blocked.decision
            finally:
                current_recorder.reset(token)
            if decision.conflict:
                raise PolicyConflict(decision.conflict)
            if current_apply.get() is not None:
                raise ApplyBlocked(
                    f"This change also requires approval under the '{decision.policy.action_key}' policy"
                )
            raise change_request_for(service, kwargs, decision, call_project, preconditions)

        GATED_SERVICES[name] = GatedService(
            name=name,
            function=gated,
            resource_type=resource_type,
            resource=resource,
            project=project,
            flag_action_keys=flag_action_keys or (lambda _: {}),
        )
        return gated

    return decorator


def policy_snapshot(policy: ApprovalPolicy) -> dict[str, Any]:
    return {
        "id": str(policy.pk),
        "action_key": policy.action_key,
        "quorum": policy.quorum,
        "users": policy.approver_user_ids,
        "roles": [],
        "allow_self_approve": policy.allow_self_approve,
        "conditions": policy.conditions,
        "bypass_org_membership_levels": policy.bypass_org_membership_levels,
        "bypass_roles": [],
    }


def change_request_for(
    service: GatedService,
    kwargs: dict[str, Any],
    decision: Decision,
    project: Project,
    preconditions: dict[str, Any],
) -> ApprovalRequired:
    """Store the change request for a blocked call (or find the open one) and build the exception."""
    policy = decision.policy
    resource = service.resource(kwargs)
    resource_id = str(resource.pk) if resource is not None and resource.pk is not None else None
    user = kwargs.get("user")
    action = gated_action(policy.action_key)
    with transaction.atomic():
        # A create has no resource yet, so two different creates are never duplicates of each other.
        existing = (
            ChangeRequest.objects.select_for_update()
            .filter(
                project=project,
                action_key=policy.action_key,
                resource_type=service.resource_type,
                resource_id=resource_id,
                state__in=ChangeRequest.OPEN_STATES,
            )
            .first()
            if resource_id is not None
            else None
        )
        if existing is not None:
            return ApprovalRequired(existing, message=DUPLICATE_MESSAGE, duplicate=True)
        arguments, argument_types = record_arguments(
            {key: value for key, value in kwargs.items() if key != "user"}
        )
        intent = {
            **action.intent(decision.facets),
            "service": service.name,
            "arguments": arguments,
            "argument_types": argument_types,
            "preconditions": preconditions,
        }
        change_request = ChangeRequest.objects.create(
            action_key=policy.action_key,
            project=project,
            organization_id=project.organization_id,
            resource_type=service.resource_type,
            resource_id=resource_id,
            intent=intent,
            intent_display=action.display(intent, decision.facets),
            policy_snapshot=policy_snapshot(policy),
            created_by=user if user is not None and user.is_authenticated else None,
            expires_at=timezone.now() + policy.expires_after,
        )
    is_approver = user is not None and user.id in policy.approver_user_ids
    message = PENDING_FROM_OTHERS if is_approver and not policy.allow_self_approve else PENDING
    return ApprovalRequired(change_request, message=message)


def replay(change_request: ChangeRequest, *, user: User | None) -> Any:
    """Run the recorded call again as `user`, with the request's own policy satisfied."""
    problem = recording_problem(change_request.intent)
    if problem is not None:
        raise ReplayError(problem)
    service = GATED_SERVICES[change_request.intent["service"]]
    kwargs = replay_arguments(
        change_request.intent.get("arguments"),
        change_request.intent.get("argument_types"),
        project=change_request.project,
    )
    token = current_apply.set(ApplyContext(approved_policy_id=str(change_request.policy_snapshot.get("id"))))
    try:
        return service.function(**kwargs, user=user)
    finally:
        current_apply.reset(token)
