"""Writes for accounts: personal API keys and the operator's bootstrap of user, organization, project."""

import hmac
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from accounts.models import (
    Organization,
    OrganizationMembership,
    PersonalAPIKey,
    Project,
    User,
    random_base62,
)
from experiments_api.secret_key import require_usable_secret_key

PERSONAL_API_KEY_PREFIX = "phx_"
PERSONAL_API_KEY_SECRET_LENGTH = 43
MAX_PERSONAL_API_KEYS_PER_USER = 10
TOO_MANY_PERSONAL_API_KEYS = (
    f"You can only have {MAX_PERSONAL_API_KEYS_PER_USER} personal API keys. "
    "Remove an existing key before creating a new one."
)


def personal_api_key_generate_secret() -> str:
    return PERSONAL_API_KEY_PREFIX + random_base62(PERSONAL_API_KEY_SECRET_LENGTH)


def personal_api_key_digest(secret: str) -> str:
    """HMAC-SHA256 of the secret keyed with the server secret: fast to verify, useless if leaked alone."""
    require_usable_secret_key()
    # The one-shot `hmac.digest` (OpenSSL in one call) gives the same bytes as `hmac.new(…)` in a
    # fraction of the time, on every request made with a key.
    return hmac.digest(settings.PERSONAL_API_KEY_SECRET.encode(), secret.encode(), "sha256").hex()


def personal_api_key_mask(secret: str) -> str:
    return f"{secret[:4]}...{secret[-4:]}"


@dataclass(frozen=True)
class IssuedPersonalAPIKey:
    """A key row together with its raw secret, which exists only in memory and is shown once."""

    key: PersonalAPIKey
    secret: str


def personal_api_key_create(
    *,
    user: User,
    label: str,
    scopes: list[str],
    scoped_teams: list[int] | None = None,
    scoped_organizations: list[str] | None = None,
) -> IssuedPersonalAPIKey:
    """Create a key for `user` and return it with its secret. The secret is never stored. A user has
    at most MAX_PERSONAL_API_KEYS_PER_USER keys: the user row is locked while counting, so parallel
    creations cannot all see room for one more."""
    secret = personal_api_key_generate_secret()
    with transaction.atomic():
        User.objects.select_for_update().only("pk").get(pk=user.pk)
        if PersonalAPIKey.objects.filter(user=user).count() >= MAX_PERSONAL_API_KEYS_PER_USER:
            raise ValidationError(TOO_MANY_PERSONAL_API_KEYS)
        key = PersonalAPIKey.objects.create(
            user=user,
            label=label,
            secure_value=personal_api_key_digest(secret),
            mask_value=personal_api_key_mask(secret),
            scopes=scopes,
            scoped_teams=scoped_teams or None,
            scoped_organizations=scoped_organizations or None,
        )
    return IssuedPersonalAPIKey(key=key, secret=secret)


def personal_api_key_roll(*, key: PersonalAPIKey) -> IssuedPersonalAPIKey:
    """Replace a key's secret; id, label, scopes and created_at stay. The old secret stops working."""
    secret = personal_api_key_generate_secret()
    key.secure_value = personal_api_key_digest(secret)
    key.mask_value = personal_api_key_mask(secret)
    key.last_rolled_at = timezone.now()
    key.save(update_fields=["secure_value", "mask_value", "last_rolled_at"])
    return IssuedPersonalAPIKey(key=key, secret=secret)


@dataclass(frozen=True)
class ProvisionedAccess:
    user: User
    organization: Organization
    project: Project
    issued: IssuedPersonalAPIKey
    created_user: bool
    created_organization: bool
    created_project: bool


LEVELS_BY_NAME = {
    "member": OrganizationMembership.Level.MEMBER,
    "admin": OrganizationMembership.Level.ADMIN,
    "owner": OrganizationMembership.Level.OWNER,
}


def access_provision(
    *,
    email: str,
    scopes: list[str],
    label: str,
    organization_name: str,
    project_name: str,
    level: str | None = None,
    replace_label: bool = False,
) -> ProvisionedAccess:
    """Make sure a user, organization and project exist, link them, and issue a key.

    An organization or project with the given name is reused; a missing one is created. The user
    joins the organization (as owner when the organization is new, else member, unless `level` says
    otherwise) and the project becomes the user's current project. With `replace_label`, the user's
    earlier keys with the same label are deleted first, so repeated runs do not pile keys up.
    """
    with transaction.atomic():
        user, created_user = User.objects.get_or_create(email=User.objects.normalize_email(email))
        if created_user:
            user.set_unusable_password()
            user.save(update_fields=["password"])

        organization = Organization.objects.filter(name=organization_name).order_by("created_at").first()
        created_organization = organization is None
        if organization is None:
            organization = Organization.objects.create(name=organization_name)

        project = Project.objects.filter(organization=organization, name=project_name).order_by("id").first()
        created_project = project is None
        if project is None:
            project = Project.objects.create(organization=organization, name=project_name)

        default_level = "owner" if created_organization else "member"
        membership_level = LEVELS_BY_NAME[level or default_level]
        membership, created_membership = OrganizationMembership.objects.get_or_create(
            organization=organization, user=user, defaults={"level": membership_level}
        )
        if not created_membership and level is not None and membership.level != membership_level:
            membership.level = membership_level
            membership.save(update_fields=["level"])

        user.current_project = project
        user.save(update_fields=["current_project"])

        if replace_label:
            PersonalAPIKey.objects.filter(user=user, label=label).delete()
        issued = personal_api_key_create(user=user, label=label, scopes=scopes)

    return ProvisionedAccess(
        user=user,
        organization=organization,
        project=project,
        issued=issued,
        created_user=created_user,
        created_organization=created_organization,
        created_project=created_project,
    )


PROJECT_SECRET_API_KEY_PREFIX = "phs_"


@dataclass(frozen=True)
class IssuedProjectSecretAPIKey:
    """A project together with its new raw secret key, which exists only in memory and is shown once."""

    project: Project
    secret: str


def project_secret_api_key_rotate(*, project: Project) -> IssuedProjectSecretAPIKey:
    """Give the project a new secret API key (`phs_…`) and return it; only its digest is stored.

    The previous secret, if any, becomes the backup and keeps working until
    `project_secret_api_key_revoke_backup`, so SDKs can be switched over without downtime.
    """
    secret = PROJECT_SECRET_API_KEY_PREFIX + random_base62(PERSONAL_API_KEY_SECRET_LENGTH)
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        locked.secret_api_token_backup_digest = locked.secret_api_token_digest
        locked.secret_api_token_digest = personal_api_key_digest(secret)
        locked.secret_api_token_mask = personal_api_key_mask(secret)
        locked.secret_api_token_rotated_at = timezone.now()
        locked.save(
            update_fields=[
                "secret_api_token_backup_digest",
                "secret_api_token_digest",
                "secret_api_token_mask",
                "secret_api_token_rotated_at",
            ]
        )
    return IssuedProjectSecretAPIKey(project=locked, secret=secret)


def project_secret_api_key_revoke_backup(*, project: Project) -> None:
    """Stop accepting the secret that was current before the last rotation."""
    Project.objects.filter(pk=project.pk).update(secret_api_token_backup_digest="")
    project.secret_api_token_backup_digest = ""


def project_secret_api_key_matches(*, secret: str, digest: str, backup_digest: str) -> bool:
    """Whether `secret` is the project's current or backup secret key, compared in constant time."""
    if not secret.startswith(PROJECT_SECRET_API_KEY_PREFIX):
        return False
    candidate = personal_api_key_digest(secret)
    current_ok = bool(digest) and hmac.compare_digest(candidate, digest)
    backup_ok = bool(backup_digest) and hmac.compare_digest(candidate, backup_digest)
    return current_ok or backup_ok
