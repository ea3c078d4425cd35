"""A project's change counters, moved in the same transaction as the change they announce.

Two counters live in the project's `FlagDefinitionsVersion` row:
- `version` moves with what SDKs receive (flags, cohorts, group types, an experiment's link to its
  flag); the flag definitions caches are keyed by it;
- `data_version` moves with anything the management API serves from the project (the models their
  apps register with `watch_project_data`, and users and memberships of its organization, whose
  names and access levels appear in bodies); cached list and retrieve answers are keyed by it.

Both are bumped by signals, which run inside the writing transaction: the counter and the rows
commit together or not at all, and a failed bump fails the write. Writes that send no signals
(`QuerySet.update()`, `bulk_create()`, raw SQL) must call `project_data_changed` themselves.
A model whose rows appear in a cached answer must be registered, or its changes would be served
stale until something else moves the counter.

A write that changes several rows of a project (an experiment and its flag) runs in
`atomic_moving_versions_once`: the counters then move once per project, at the end of its block,
still inside the transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from typing import Any

from django.db import IntegrityError, connection, models, transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

from accounts.models import FlagDefinitionsVersion, OrganizationMembership, Project, User


def row_project(instance: Any) -> int | None:
    """The project of a row with a `project` foreign key."""
    return getattr(instance, "project_id", None)


# Inside `atomic_moving_versions_once`: the projects whose counters move when its block ends, each
# with whether its flag definitions version moves too.
_pending_bumps: ContextVar[dict[int, bool] | None] = ContextVar("pending_version_bumps", default=None)


@contextmanager
def atomic_moving_versions_once() -> Iterator[None]:
    """`transaction.atomic()` in which the project counters move once per project, when the block
    ends (still inside it), however many of the project's rows it writes. The counters and the rows
    commit together as always; and since concurrent writers of a project take turns on its counter
    row from their bump to their commit, bumping last also keeps that turn short. When the block
    raises, nothing is bumped: the atomic block undoes every write it would have announced. A block
    inside another one leaves its bumps to the outer one."""
    pending: dict[int, bool] = {}
    with transaction.atomic():
        token = _pending_bumps.set(pending)
        try:
            yield
        finally:
            _pending_bumps.reset(token)
        # In an enclosing block, the bumps join its own.
        for project_id in sorted(pending):
            project_versions_bump([project_id], flag_definitions=pending[project_id])


def project_versions_bump(project_ids: Iterable[int], *, flag_definitions: bool) -> None:
    """Move the projects' data version (and their flag definitions version when asked) inside the
    caller's transaction: now, or when the enclosing `atomic_moving_versions_once` block ends. The
    rows stay locked until it commits, so concurrent writers of one project take turns here, and a
    rollback takes the bump back with the change."""
    pending = _pending_bumps.get()
    if pending is not None:
        for project_id in project_ids:
            pending[project_id] = pending.get(project_id, False) or flag_definitions
        return
    for project_id in sorted(set(project_ids)):
        _bump(project_id, flag_definitions=flag_definitions)


@cache
def _bump_statement(flag_definitions: bool) -> str:
    """Written out once per process: every write of the management API runs it, and the ORM took
    longer to build it than PostgreSQL takes to run it."""
    quote = connection.ops.quote_name
    moved = [quote("data_version")] + ([quote("version")] if flag_definitions else [])
    assignments = ", ".join(f"{column} = {column} + 1" for column in moved)
    table = quote(FlagDefinitionsVersion._meta.db_table)
    return f"UPDATE {table} SET {assignments} WHERE {quote('project_id')} = %s"


def _bump(project_id: int, *, flag_definitions: bool) -> None:
    statement = _bump_statement(flag_definitions)
    with connection.cursor() as cursor:
        cursor.execute(statement, [project_id])
        if cursor.rowcount:
            return
    try:
        with transaction.atomic():
            FlagDefinitionsVersion.objects.create(
                project_id=project_id, version=1 if flag_definitions else 0, data_version=1
            )
    except IntegrityError:
        # A concurrent first bump created the row (or the project is being deleted).
        with connection.cursor() as cursor:
            cursor.execute(statement, [project_id])


def project_data_changed(project_id: int, *, flag_definitions: bool = False) -> None:
    """Announce a change made without model signals (bulk writes): bumps the counters (now, or at
    the end of the enclosing `atomic_moving_versions_once` block)."""
    project_versions_bump([project_id], flag_definitions=flag_definitions)


def _organization_projects(organization_id: Any) -> list[int]:
    return list(Project.objects.filter(organization_id=organization_id).values_list("id", flat=True))


def _on_project_row_changed(
    flag_definitions: bool, project_of: Callable[[Any], int | None]
) -> Callable[..., None]:
    def receiver(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
        project_id = project_of(instance)
        if project_id is not None:
            project_versions_bump([project_id], flag_definitions=flag_definitions)

    return receiver


def _on_links_changed(sender: type[models.Model], instance: models.Model, action: str, **kwargs: Any) -> None:
    if action.startswith("post_") and getattr(instance, "project_id", None) is not None:
        project_versions_bump([instance.project_id], flag_definitions=False)


def _on_membership_changed(
    sender: type[models.Model], instance: OrganizationMembership, **kwargs: Any
) -> None:
    project_versions_bump(_organization_projects(instance.organization_id), flag_definitions=False)


def _on_user_changed(
    sender: type[models.Model], instance: User, created: bool = False, **kwargs: Any
) -> None:
    if created:
        return
    organization_ids = OrganizationMembership.objects.filter(user_id=instance.pk).values_list(
        "organization_id", flat=True
    )
    project_ids = Project.objects.filter(organization_id__in=organization_ids).values_list("id", flat=True)
    project_versions_bump(list(project_ids), flag_definitions=False)


def watch_project_data(
    model: type[models.Model],
    *,
    moves_flag_definitions: bool,
    project_of: Callable[[Any], int | None] = row_project,
) -> None:
    """Bump the project's counters whenever a row of `model` is saved or deleted, or its
    many-to-many links change; `moves_flag_definitions` when SDKs receive what it holds. Called by
    the app that defines `model`, from its `AppConfig.ready()`: accounts imports no app above it."""
    receiver = _on_project_row_changed(moves_flag_definitions, project_of)
    uid = f"project-versions-{model._meta.label}"
    post_save.connect(receiver, sender=model, weak=False, dispatch_uid=uid)
    post_delete.connect(receiver, sender=model, weak=False, dispatch_uid=f"{uid}-delete")
    for field in model._meta.many_to_many:
        m2m_changed.connect(_on_links_changed, sender=field.remote_field.through, dispatch_uid=f"{uid}-m2m")


def connect_project_data_signals() -> None:
    """Watch the users and memberships of a project's organization, whose names and access levels
    appear in bodies (from `AccountsConfig.ready`; the other apps call `watch_project_data`)."""
    post_save.connect(
        _on_membership_changed, sender=OrganizationMembership, dispatch_uid="project-versions-m"
    )
    post_delete.connect(
        _on_membership_changed, sender=OrganizationMembership, dispatch_uid="project-versions-md"
    )
    post_save.connect(_on_user_changed, sender=User, dispatch_uid="project-versions-user")
