"""Which project an SDK request's public project token (`phc_…`) names.

Event intake and flag delivery both authenticate SDK requests by the project token, on every
request, so the lookup is one statement that also reads what delivery needs next (the project's
flag definitions version and its secret API key digests).
"""

from dataclasses import dataclass
from typing import Any

from django.db import connection

from accounts.models import FlagDefinitionsVersion, Project


@dataclass(frozen=True)
class DeliveryProject:
    """The little an SDK request needs to know about the project its token names."""

    id: int
    organization_id: Any
    definitions_version: int
    secret_api_token_digest: str
    secret_api_token_backup_digest: str


def _token_lookup_sql() -> str:
    quote = connection.ops.quote_name
    project, version = Project._meta, FlagDefinitionsVersion._meta
    return (
        f"SELECT p.{quote('id')}, p.{quote('organization_id')}, v.{quote('version')}, "
        f"p.{quote('secret_api_token_digest')}, p.{quote('secret_api_token_backup_digest')} "
        f"FROM {quote(project.db_table)} p LEFT JOIN {quote(version.db_table)} v "
        f"ON v.{quote('project_id')} = p.{quote('id')} WHERE p.{quote('api_token')} = %s"
    )


def delivery_project_for_token(token: str) -> DeliveryProject | None:
    """The project whose public token (`phc_…`) this is, with its definitions version: one statement,
    written out so the hot path of every SDK request skips building ORM SQL."""
    with connection.cursor() as cursor:
        cursor.execute(_token_lookup_sql(), [token])
        row = cursor.fetchone()
    if row is None:
        return None
    project_id, organization_id, version, digest, backup_digest = row
    return DeliveryProject(project_id, organization_id, version or 0, digest, backup_digest)
