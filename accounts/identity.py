"""Who a personal API key is, and what they may see of the project the URL names: one statement.

A key-authenticated request to `/api/projects/{id}/…` needs the key, its user, the project, the
user's membership level in the project's organization and the project's data version. Read one by
one through the ORM that is two round trips and ~2 ms of SQL building per request; here it is one
statement written out once per process. Nothing is cached, so revoking a key, deactivating a user
or removing a membership takes effect on the very next request, on every process.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from django.db import connection, models

from accounts.models import (
    FlagDefinitionsVersion,
    Organization,
    OrganizationMembership,
    PersonalAPIKey,
    Project,
    User,
)

# Bigint range of project ids; anything else in the URL cannot name a project.
MAX_PROJECT_ID = 2**63


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
    selected = _columns("k", PersonalAPIKey) + _columns("u", User)
    joins = (
        f"FROM {quote(PersonalAPIKey._meta.db_table)} k "
        f"JOIN {quote(User._meta.db_table)} u ON u.{quote('id')} = k.{quote('user_id')} AND u.{quote('is_active')} "
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


def key_with_access(
    digest: str, project_id: int | None
) -> tuple[PersonalAPIKey, ProjectAccess | None] | None:
    """The active user's key with this digest (its `user` loaded) and, when `project_id` is given,
    the user's access to that project; None when no active user's key has this digest."""
    params: list = [project_id, digest] if project_id is not None else [digest]
    with connection.cursor() as cursor:
        cursor.execute(_statement(project_id is not None), params)
        row = cursor.fetchone()
    if row is None:
        return None
    row = list(row)
    key = _instance(PersonalAPIKey, row)
    row = row[len(PersonalAPIKey._meta.concrete_fields) :]
    key.user = _instance(User, row)
    if project_id is None:
        return key, None
    row = row[len(User._meta.concrete_fields) :]
    project_values = row[: len(Project._meta.concrete_fields)]
    row = row[len(Project._meta.concrete_fields) :]
    organization_values = row[: len(Organization._meta.concrete_fields)]
    level, data_version = row[len(Organization._meta.concrete_fields) :]
    if project_values[0] is None or level is None:
        return key, ProjectAccess(project_id, None)
    project = _instance(Project, project_values)
    project.organization = _instance(Organization, organization_values)
    project.membership_level = level
    project.data_version = data_version
    return key, ProjectAccess(project_id, project)


def project_id_from_url(raw: object) -> int | None:
    """The project id a URL's `{project_id}` names, or None (`@current`, junk, out of range)."""
    if not isinstance(raw, str) or not raw.isascii() or not raw.isdigit():
        return None
    value = int(raw)
    return value if 0 < value < MAX_PROJECT_ID else None
