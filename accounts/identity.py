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

Callers get their own copies of the cached model instances, so nothing a view does to them can
change what the next request sees.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

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

# Keys whose identity one process keeps; the least recently used beyond this are dropped.
PROCESS_CACHE_IDENTITIES = 4096


@dataclass(frozen=True)
class ProjectAccess:
    """The project the URL names with the user's `membership_level` and the project's `data_version`
    annotated (as `resolve_project_for_user` returns it), or None when the user may not see it."""

    project_id: int
    project: Project | None


def _columns(alias: str, model: type[models.Model]) -> list[str]:
    quote = connection.ops.quote_name
    return [f"{alias}.{quote(field.column)}" for field in model._meta.concrete_fields]


@cache
def _statement(with_project: bool) -> str:
    quote = connection.ops.quote_name
    selected = [f"i.{quote('version')}"] + _columns("k", PersonalAPIKey) + _columns("u", User)
    joins = (
        f"FROM {quote(PersonalAPIKey._meta.db_table)} k "
        f"JOIN {quote(User._meta.db_table)} u ON u.{quote('id')} = k.{quote('user_id')} AND u.{quote('is_active')} "
        f"LEFT JOIN {quote(UserIdentityVersion._meta.db_table)} i ON i.{quote('user_id')} = u.{quote('id')} "
    )
    if with_project:
        selected += (
            _columns("p", Project)
            + _columns("o", Organization)
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


def _instance(model: type[models.Model], values: list) -> models.Model:
    """A model instance from raw column values, decoded as the ORM decodes them (JSON fields)."""
    fields = model._meta.concrete_fields
    decoded = [
        field.from_db_value(value, None, connection) if hasattr(field, "from_db_value") else value
        for field, value in zip(fields, values, strict=False)
    ]
    return model.from_db(connection.alias, [field.attname for field in fields], decoded)


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


# key digest → its identity at the last version this process saw. Sync workers serve one request
# at a time; with threads, the worst a race does is read the same identity twice.
_process_identities: OrderedDict[str, _CachedIdentity] = OrderedDict()


def _instance_copy(instance: models.Model) -> models.Model:
    """A shallow copy with its own state and no cached relations (cheaper than `copy.copy`)."""
    duplicate = instance.__class__.__new__(instance.__class__)
    duplicate.__dict__.update(instance.__dict__)
    # A fresh state starts with empty relation and related-manager caches of its own.
    duplicate._state = state = ModelState()
    state.db, state.adding = instance._state.db, instance._state.adding
    return duplicate


def _handed_out(
    cached: PersonalAPIKey, access: ProjectAccess | None, data_version: int | None
) -> tuple[PersonalAPIKey, ProjectAccess | None]:
    key = _instance_copy(cached)
    key.user = _instance_copy(cached.user)
    if access is None or access.project is None:
        return key, access
    project = _instance_copy(access.project)
    project.organization = _instance_copy(access.project.organization)
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
        current = _current_versions(held.key.user_id, project_id)
        found = _held_key_with_access(digest, held, project_id, current)
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
    found = delivery_project_and_identity_version(token, held.key.user_id)
    if found is None:
        return None
    project, identity_version = found
    current = None if identity_version is None else (identity_version, None)
    key_access = _held_key_with_access(digest, held, project.id, current)
    return project, key_access if key_access is not None else _read_and_hold(digest, project.id, held)


def _held_key_with_access(
    digest: str, held: _CachedIdentity, project_id: int | None, current: tuple[int, int | None] | None
) -> tuple[PersonalAPIKey, ProjectAccess | None] | None:
    """The held identity's key and access to the project, when `current` (the identity version and
    the project's data version just read) shows it is still valid and it holds that project."""
    if current is None or current[0] != held.version:
        return None
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
    key = _instance(PersonalAPIKey, row)
    row = row[len(PersonalAPIKey._meta.concrete_fields) :]
    key.user = _instance(User, row)
    if project_id is None:
        return version, key, None
    row = row[len(User._meta.concrete_fields) :]
    project_values = row[: len(Project._meta.concrete_fields)]
    row = row[len(Project._meta.concrete_fields) :]
    organization_values = row[: len(Organization._meta.concrete_fields)]
    level, data_version = row[len(Organization._meta.concrete_fields) :]
    if project_values[0] is None or level is None:
        return version, key, ProjectAccess(project_id, None)
    project = _instance(Project, project_values)
    project.organization = _instance(Organization, organization_values)
    project.membership_level = level
    project.data_version = data_version
    return version, key, ProjectAccess(project_id, project)


def project_id_from_url(raw: object) -> int | None:
    """The project id a URL's `{project_id}` names, or None (`@current`, junk, out of range)."""
    return id_from_text(raw)
