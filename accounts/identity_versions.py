"""Each user's identity counter, moved in the same transaction as the change it announces.

What authenticating with a personal API key yields — the key with its scopes, the user, their
memberships and the projects and organizations those reach — is cached per process
(`accounts.identity`), keyed by the user's `UserIdentityVersion`. The counter moves, through model
signals inside the writing transaction, when any of these is saved or deleted:
- the user (deactivating them, changing their current project);
- one of their personal API keys (created, rolled, re-scoped, deleted);
- one of their memberships;
- an organization they belong to, or a project of one (every member's counter moves).
So a revoked key, a deactivated user or a removed membership is refused on the very next request,
on every process. Writes that send no signals (`QuerySet.update()`, `bulk_create()`, raw SQL) to
these rows must call `user_identities_changed` themselves.

A process may also trust an identity it confirmed for IDENTITY_LEASE_SECONDS without reading the
counter (`accounts.identity`, for calls that need nothing but the identity). So every transaction
that moves a counter sleeps out that lease after it commits, once, before the API, admin or command
that wrote answers: a request begun after the answer arrives cannot be served from a lease taken
before the commit, on any process or machine.

Every user gets a row when created (and the migration gave existing users one); a user without a
row is never cached, so a user made without signals is still always read afresh.
"""

from __future__ import annotations

from collections.abc import Iterable
from time import sleep
from typing import Any

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import F
from django.db.models.signals import post_delete, post_save

from accounts.models import (
    Organization,
    OrganizationMembership,
    PersonalAPIKey,
    Project,
    User,
    UserIdentityVersion,
)


def user_identities_changed(user_ids: Iterable[int]) -> None:
    """Move the users' identity counters now, inside the caller's transaction: the rows stay locked
    until it commits, and a rollback takes the bump back with the change."""
    ids = sorted(set(user_ids))
    if ids:
        UserIdentityVersion.objects.filter(user_id__in=ids).update(version=F("version") + 1)
        _outlast_identity_leases_after_commit()


# The wait is the lease and this share of it again: a lease is timed by its own machine's clock, which
# may run slower than the writer's (NTP keeps clock rates within 0.05% of each other; 10% is far
# beyond any clock still usable).
IDENTITY_LEASE_WAIT_MARGIN = 0.1


def identity_lease_wait_seconds() -> float:
    """How long a write that moved identity versions waits after its commit."""
    return settings.IDENTITY_LEASE_SECONDS * (1 + IDENTITY_LEASE_WAIT_MARGIN)


def _outlast_identity_leases() -> None:
    sleep(identity_lease_wait_seconds())


def _outlast_identity_leases_after_commit() -> None:
    # on_commit callbacks run after the outermost atomic block commits (at once outside one), in
    # this thread, before the caller answers; one wait per transaction however many rows moved.
    if settings.IDENTITY_LEASE_SECONDS <= 0:
        return
    if any(callback is _outlast_identity_leases for _, callback, _ in connection.run_on_commit):
        return
    transaction.on_commit(_outlast_identity_leases)


def _organization_members(organization_id: Any) -> list[int]:
    return list(
        OrganizationMembership.objects.filter(organization_id=organization_id).values_list(
            "user_id", flat=True
        )
    )


def _on_user_saved(sender: type[models.Model], instance: User, created: bool = False, **kwargs: Any) -> None:
    if created:
        UserIdentityVersion.objects.get_or_create(user_id=instance.pk)
    else:
        user_identities_changed([instance.pk])


def _on_user_row_changed(sender: type[models.Model], instance: Any, **kwargs: Any) -> None:
    user_identities_changed([instance.user_id])


def _on_organization_changed(sender: type[models.Model], instance: Organization, **kwargs: Any) -> None:
    user_identities_changed(_organization_members(instance.pk))


def _on_project_changed(sender: type[models.Model], instance: Project, **kwargs: Any) -> None:
    user_identities_changed(_organization_members(instance.organization_id))


def connect_identity_signals() -> None:
    """Watch every row an identity is made of (from `AccountsConfig.ready`)."""
    post_save.connect(_on_user_saved, sender=User, dispatch_uid="identity-user")
    for model in (PersonalAPIKey, OrganizationMembership):
        post_save.connect(_on_user_row_changed, sender=model, dispatch_uid=f"identity-{model.__name__}")
        post_delete.connect(_on_user_row_changed, sender=model, dispatch_uid=f"identity-{model.__name__}-d")
    post_save.connect(_on_organization_changed, sender=Organization, dispatch_uid="identity-organization")
    post_delete.connect(_on_organization_changed, sender=Organization, dispatch_uid="identity-organization-d")
    post_save.connect(_on_project_changed, sender=Project, dispatch_uid="identity-project")
    post_delete.connect(_on_project_changed, sender=Project, dispatch_uid="identity-project-d")
