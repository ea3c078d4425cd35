"""Which project an SDK request's public project token (`phc_…`) names.

Event intake and flag delivery both authenticate SDK requests by the project token, on every
request, so the lookup is one statement that also reads what delivery needs next (the project's
flag definitions version and its secret API key digests) and, for a definitions poll with a
personal API key, the identity version that validates the key's identity this process holds
(`accounts.identity`).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.db import connection

from accounts.models import FlagDefinitionsVersion, Project, User, UserIdentityVersion


@dataclass(frozen=True)
class DeliveryProject:
    """The little an SDK request needs to know about the project its token names."""

    id: int
    organization_id: Any
    definitions_version: int
    secret_api_token_digest: str
    secret_api_token_backup_digest: str


@cache
def _token_lookup_sql(with_identity_version: bool) -> str:
    quote = connection.ops.quote_name
    project, version = Project._meta, FlagDefinitionsVersion._meta
    selected = (
        f"p.{quote('id')}, p.{quote('organization_id')}, v.{quote('version')}, "
        f"p.{quote('secret_api_token_digest')}, p.{quote('secret_api_token_backup_digest')}"
    )
    joins = f"LEFT JOIN {quote(version.db_table)} v ON v.{quote('project_id')} = p.{quote('id')} "
    if with_identity_version:
        user, identity_version = User._meta, UserIdentityVersion._meta
        selected += f", i.{quote('version')}"
        joins += (
            f"LEFT JOIN {quote(user.db_table)} u ON u.{quote('id')} = %s AND u.{quote('is_active')} "
            f"LEFT JOIN {quote(identity_version.db_table)} i ON i.{quote('user_id')} = u.{quote('id')} "
        )
    return f"SELECT {selected} FROM {quote(project.db_table)} p {joins}WHERE p.{quote('api_token')} = %s"


def delivery_project_for_token(token: str) -> DeliveryProject | None:
    """The project whose public token (`phc_…`) this is, with its definitions version: one statement,
    written out so the hot path of every SDK request skips building ORM SQL."""
    with connection.cursor() as cursor:
        cursor.execute(_token_lookup_sql(False), [token])
        row = cursor.fetchone()
    return None if row is None else _delivery_project(row)


def delivery_project_and_identity_version(
    token: str, user_id: int
) -> tuple[DeliveryProject, int | None] | None:
    """`delivery_project_for_token` with, in the same statement, the identity version of the user
    (`accounts.identity_versions`); None for the version when the user is inactive or has none."""
    with connection.cursor() as cursor:
        cursor.execute(_token_lookup_sql(True), [user_id, token])
        row = cursor.fetchone()
    if row is None:
        return None
    *project_values, identity_version = row
    return _delivery_project(project_values), identity_version


def _delivery_project(row: Sequence[Any]) -> DeliveryProject:
    project_id, organization_id, version, digest, backup_digest = row
    return DeliveryProject(project_id, organization_id, version or 0, digest, backup_digest)
