"""Who a personal API key is, and what they may see of the project the URL names: one statement,
then a per-process map checked by one tiny statement.

A key-authenticated request to `/api/projects/{id}/…` needs the key, its user, the project, the
user's membership level in the project's organization and the project's data version. The first
request of a key in a process reads them in one statement written out once per process; the
result is kept in this process under the key's digest with the user's identity version
(`accounts.identity_versions`). Later requests read only that version and the project's data
version, in one prepared two-column statement; a different version (the key was rolled or deleted,
the user deactivated, a membership, organization or project changed) reads everything afresh. The
version moves in the same transaction as those writes, so revocation takes effect on the very next
request, on every process, with or without Redis.

A call that needs nothing but the identity (no project in the URL: `@me`) skips even that read
while the process holds a lease on the identity: IDENTITY_LEASE_SECONDS from the moment the last
statement that confirmed its version was sent (taken before sending, so the lease never outlives
the database state it was read from). Every write that moves an identity version sleeps out the
lease after its commit, before answering (`accounts.identity_versions`): a request that begins
after the revoking answer arrives finds every lease granted before the commit expired, on every
process and machine (this needs clocks that run at about the same rate, not synchronised ones). A
request that began before the revoking answer arrived is concurrent with the write and may be
served either way, as without the lease. Calls naming a project read the versions every time: the
project's data version moves with every experiment write.

Callers get their own copies of the cached model instances, so nothing a view does to them can
change what the next request sees.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from time import monotonic
from typing import Any

from django.conf import settings
from django.db import connection, models
from django.db.models.base import ModelState

from accounts.models import (
    FlagDefinitionsVersion,
    Organization,
    OrganizationMembership,
    PersonalAPIKey,
    Project,
    User,
    UserIdentityVersion,
)
from accounts.project_tokens import (
    DeliveryProject,
    delivery_project_and_identity_version,
    delivery_project_for_token,
)
from experiments_api.ids import id_from_text
from experiments_api.rows import model_columns, row_instances

# Keys whose identity one process keeps; the least recently used beyond this are dropped.
PROCESS_CACHE_IDENTITIES = 4096


@dataclass(frozen=True)
class ProjectAccess:
    """The project the URL names with the user's `membership_level` and the project's `data_version`
    annotated (as `resolve_project_for_user` returns it), or None when the user may not see it."""

    project_id: int
    project: Project | None


@cache
def _statement(with_project: bool) -> str:
    quote = connection.ops.quote_name
    selected = [f"i.{quote('version')}"] + model_columns("k", PersonalAPIKey) + model_columns("u", User)
    joins = (
        f"FROM {quote(PersonalAPIKey._meta.db_table)} k "
        f"JOIN {quote(User._meta.db_table)} u ON u.{quote('id')} = k.{quote('user_id')} AND u.{quote('is_active')} "
        f"LEFT JOIN {quote(UserIdentityVersion._meta.db_table)} i ON i.{quote('user_id')} = u.{quote('id')} "
    )
    if with_project:
        selected += (
            model_columns("p", Project)
            + model_columns("o", Organization)
            + [f"m.{quote('level')}", f"v.{quote('data_version')}"]
        )
        joins += (
            f"LEFT JOIN {quote(Project._meta.db_table)} p ON p.{quote('id')} = %s "
            f"LEFT JOIN {quote(Organization._meta.db_table)} o ON o.{quote('id')} = p.{quote('organization_id')} "
            f"LEFT JOIN {quote(OrganizationMembership._meta.db_table)} m "
            f"ON m.{quote('organization_id')} = p.{quote('organization_id')} AND m.{quote('user_id')} = u.{quote('id')} "
            f"LEFT JOIN {quote(FlagDefinitionsVersion._meta.db_table)} v ON v.{quote('project_id')} = p.{quote('id')} "
        )
    return f"SELECT {', '.join(selected)} {joins}WHERE k.{quote('secure_value')} = %s"


@cache
def _versions_statement() -> str:
    quote = connection.ops.quote_name
    return (
        f"SELECT i.{quote('version')}, v.{quote('data_version')} "
        f"FROM {quote(User._meta.db_table)} u "
        f"JOIN {quote(UserIdentityVersion._meta.db_table)} i ON i.{quote('user_id')} = u.{quote('id')} "
        f"LEFT JOIN {quote(FlagDefinitionsVersion._meta.db_table)} v ON v.{quote('project_id')} = %s "
        f"WHERE u.{quote('id')} = %s AND u.{quote('is_active')}"
    )


@dataclass
class _CachedIdentity:
    """A key's identity at one identity version: the key (its `user` loaded), the user's access to
    each project asked about so far, and `memo`, where views keep what they derive from the identity
    alone (the `@me` body), valid as long as the version is."""

    version: int
    key: PersonalAPIKey
    accesses: dict[int, ProjectAccess] = field(default_factory=dict)
    memo: dict[str, Any] = field(default_factory=dict)
    # `monotonic()` before which calls naming no project trust `version` without reading it.
    leased_until: float = 0.0

    def confirmed(self, asked_at: float) -> None:
        """The version was read again by a statement sent at `asked_at` (`monotonic()`)."""
        self.leased_until = asked_at + settings.IDENTITY_LEASE_SECONDS


# key digest → its identity at the last version this process saw. Sync workers serve one request
# at a time; with threads, the worst a race does is read the same identity twice.
_process_identities: OrderedDict[str, _CachedIdentity] = OrderedDict()


def _instance_copy(instance: models.Model, related: dict[str, models.Model] | None = None) -> models.Model:
    """A shallow copy with its own state (cheaper than `copy.copy`), whose relation cache holds only
    `related`: copies of the instances its foreign keys (which it keeps) point to, by field name."""
    duplicate = instance.__class__.__new__(instance.__class__)
    duplicate.__dict__.update(instance.__dict__)
    # A fresh state starts with empty related-manager caches of its own. The relation cache is
    # filled directly: the relation descriptors would check again what the cached copy showed.
    duplicate._state = state = ModelState()
    state.db, state.adding = instance._state.db, instance._state.adding
    state.fields_cache = related or {}
    return duplicate


def _handed_out(
    cached: PersonalAPIKey, access: ProjectAccess | None, data_version: int | None
) -> tuple[PersonalAPIKey, ProjectAccess | None]:
    key = _instance_copy(cached, {"user": _instance_copy(cached.user)})
    if access is None or access.project is None:
        return key, access
    project = _instance_copy(access.project, {"organization": _instance_copy(access.project.organization)})
    project.data_version = data_version
    return key, ProjectAccess(access.project_id, project)


def _current_versions(user_id: int, project_id: int | None) -> tuple[int, int | None] | None:
    """The user's identity version and the project's data version, or None for an inactive user."""
    with connection.cursor() as cursor:
        cursor.execute(_versions_statement(), [project_id, user_id])
        return cursor.fetchone()


def key_with_access(
    digest: str, project_id: int | None
) -> tuple[PersonalAPIKey, ProjectAccess | None] | None:
    """The active user's key with this digest (its `user` loaded) and, when `project_id` is given,
    the user's access to that project; None when no active user's key has this digest."""
    held = _process_identities.get(digest)
    if held is not None:
        asked_at = monotonic()
        if project_id is None and asked_at < held.leased_until:
            _process_identities.move_to_end(digest)
            return _handed_out(held.key, None, None)
        current = _current_versions(held.key.user_id, project_id)
        found = _held_key_with_access(digest, held, project_id, current, asked_at)
        if found is not None:
            return found
    return _read_and_hold(digest, project_id, held)


def key_with_access_for_project_token(
    digest: str, token: str
) -> tuple[DeliveryProject, tuple[PersonalAPIKey, ProjectAccess | None] | None] | None:
    """The project whose public token (`phc_…`) this is and `key_with_access` of the key with this
    digest to it; None when no project has the token. One statement when this process holds the
    key's identity at its current version and the key has reached the project before (the project
    and the identity version are read together), else two. The project's data version is not read
    on the one-statement path: the access's `project.data_version` is None there."""
    held = _process_identities.get(digest)
    if held is None:
        project = delivery_project_for_token(token)
        return None if project is None else (project, _read_and_hold(digest, project.id, None))
    asked_at = monotonic()
    found = delivery_project_and_identity_version(token, held.key.user_id)
    if found is None:
        return None
    project, identity_version = found
    current = None if identity_version is None else (identity_version, None)
    key_access = _held_key_with_access(digest, held, project.id, current, asked_at)
    return project, key_access if key_access is not None else _read_and_hold(digest, project.id, held)


def _held_key_with_access(
    digest: str,
    held: _CachedIdentity,
    project_id: int | None,
    current: tuple[int, int | None] | None,
    asked_at: float,
) -> tuple[PersonalAPIKey, ProjectAccess | None] | None:
    """The held identity's key and access to the project, when `current` (the identity version and
    the project's data version just read by a statement sent at `asked_at`) shows it is still valid
    and it holds that project."""
    if current is None or current[0] != held.version:
        return None
    held.confirmed(asked_at)
    _process_identities.move_to_end(digest)
    if project_id is None:
        return _handed_out(held.key, None, None)
    if project_id in held.accesses:
        return _handed_out(held.key, held.accesses[project_id], current[1])
    return None


def _read_and_hold(
    digest: str, project_id: int | None, held: _CachedIdentity | None
) -> tuple[PersonalAPIKey, ProjectAccess | None] | None:
    """`key_with_access` read from the database, kept in this process for the next request."""
    asked_at = monotonic()
    found = read_key_with_access(digest, project_id)
    if found is None:
        _process_identities.pop(digest, None)
        return None
    version, key, access = found
    if version is None:
        return key, access
    if held is None or held.version != version:
        held = _CachedIdentity(version, key)
        _process_identities[digest] = held
    held.confirmed(asked_at)
    _process_identities.move_to_end(digest)
    while len(_process_identities) > PROCESS_CACHE_IDENTITIES:
        _process_identities.popitem(last=False)
    if project_id is not None:
        held.accesses[project_id] = access
    return _handed_out(held.key, access, access.project.data_version if access and access.project else None)


def identity_memo(digest: str) -> dict[str, Any] | None:
    """Where a view may keep what it derives from this key's identity alone, valid until the
    identity version moves; None when the identity is not cached. Call right after `key_with_access`
    in the same request."""
    held = _process_identities.get(digest)
    return held.memo if held is not None else None


def key_used(digest: str, when: datetime) -> None:
    """Record in the cached identity that the key's `last_used_at` was written (that write moves no
    version), so the next request does not write it again."""
    held = _process_identities.get(digest)
    if held is not None:
        held.key.last_used_at = when


def forget_process_identities() -> None:
    """Drop this process's identities (tests use it to act as a freshly started worker)."""
    _process_identities.clear()


def read_key_with_access(
    digest: str, project_id: int | None
) -> tuple[int | None, PersonalAPIKey, ProjectAccess | None] | None:
    """`key_with_access` read from the database in one statement, with the user's identity version
    (None for a user without a version row, who is never cached)."""
    params: list = [project_id, digest] if project_id is not None else [digest]
    with connection.cursor() as cursor:
        cursor.execute(_statement(project_id is not None), params)
        row = cursor.fetchone()
    if row is None:
        return None
    version, *row = row
    if project_id is None:
        (key, user), _ = row_instances(row, PersonalAPIKey, User)
        key.user = user
        return version, key, None
    (key, user, project, organization), (level, data_version) = row_instances(
        row, PersonalAPIKey, User, Project, Organization
    )
    key.user = user
    if project is None or level is None:
        return version, key, ProjectAccess(project_id, None)
    project.organization = organization
    project.membership_level = level
    project.data_version = data_version
    return version, key, ProjectAccess(project_id, project)


def project_id_from_url(raw: object) -> int | None:
    """The project id a URL's `{project_id}` names, or None (`@current`, junk, out of range)."""
    return id_from_text(raw)
