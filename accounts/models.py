"""Organizations, projects, users, memberships and personal API keys.

A project is PostHog's "team": the unit every experiment, flag and holdout belongs to. Each project
has exactly one environment, so PostHog's team id and project id are the same number here.
"""

import secrets
import uuid

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.utils.timezone import now

BASE62_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def random_base62(length: int) -> str:
    return "".join(secrets.choice(BASE62_ALPHABET) for _ in range(length))


def generate_project_api_token() -> str:
    return "phc_" + random_base62(43)


def generate_personal_api_key_id() -> str:
    return random_base62(20)


class Organization(models.Model):
    """A company or group of people; owns projects and has members at levels member/admin/owner."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Project(models.Model):
    """PostHog's "team": the container of experiments, flags, holdouts and the experiment defaults."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=200)
    api_token = models.CharField(max_length=200, unique=True, default=generate_project_api_token)
    timezone = models.CharField(max_length=64, default="UTC")
    # Defaults new experiments and their flags take (PostHog's team settings and TeamExperimentsConfig).
    flags_persistence_default = models.BooleanField(default=False)
    default_experiment_stats_method = models.CharField(
        max_length=20,
        null=True,
        blank=True,
        choices=[("bayesian", "bayesian"), ("frequentist", "frequentist")],
    )
    default_experiment_confidence_level = models.DecimalField(
        max_digits=3, decimal_places=2, null=True, blank=True
    )
    default_only_count_matured_users = models.BooleanField(default=False)
    # The project secret API key (`phs_…`) lets SDKs fetch flag definitions for local evaluation.
    # Only HMAC digests are stored. After a rotation the previous secret stays valid as the backup
    # until it is revoked, so running SDKs can be moved to the new secret without downtime.
    secret_api_token_digest = models.CharField(max_length=128, blank=True, default="", editable=False)
    secret_api_token_mask = models.CharField(max_length=11, blank=True, default="", editable=False)
    secret_api_token_backup_digest = models.CharField(max_length=128, blank=True, default="", editable=False)
    secret_api_token_rotated_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"


class FlagDefinitionsVersion(models.Model):
    """A project's change counters (see `accounts.versions`), bumped inside every writing transaction.

    `version` moves with every change to the project's flags, cohorts or group types: caches of its
    flag definitions are keyed by it, and every SDK request reads it from the database with the
    project. `data_version` moves with every change to anything the management API serves from the
    project: cached list and retrieve answers are keyed by it. They live in their own row, not on
    Project, so that saving a project loaded earlier can never move a counter back.
    """

    project = models.OneToOneField(
        Project, on_delete=models.CASCADE, primary_key=True, related_name="flag_definitions_version"
    )
    version = models.PositiveBigIntegerField(default=0)
    data_version = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.project_id}: {self.version}"


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra_fields) -> "User":
        if not email:
            raise ValueError("Users must have an email address")
        user = self.model(email=self.normalize_email(email), **extra_fields)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra_fields) -> "User":
        extra_fields.setdefault("is_staff", True)
        extra_fields.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra_fields)


def generate_distinct_id() -> str:
    return random_base62(32)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who signs in with an email address. Acts through personal API keys or a session."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    email = models.EmailField(unique=True)
    distinct_id = models.CharField(max_length=200, unique=True, default=generate_distinct_id)
    first_name = models.CharField(max_length=150, blank=True)
    last_name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    current_project = models.ForeignKey(
        Project, on_delete=models.SET_NULL, null=True, blank=True, related_name="current_users"
    )
    date_joined = models.DateTimeField(default=now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.email

    @property
    def display_name(self) -> str:
        full_name = f"{self.first_name} {self.last_name}".strip()
        return full_name or self.email


class UserIdentityVersion(models.Model):
    """A user's identity counter (see `accounts.versions`), bumped inside every transaction that
    changes what authenticating as them yields: their row, their keys, their memberships, and the
    organizations and projects those reach. Per-process identity caches are keyed by it. In its own
    row, not on User, so that saving a user loaded earlier can never move it back; a user without a
    row is at version 0."""

    user = models.OneToOneField(
        User, on_delete=models.CASCADE, primary_key=True, related_name="identity_version"
    )
    version = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.user_id}: {self.version}"


class OrganizationMembership(models.Model):
    """A user's membership of an organization, with PostHog's numeric levels."""

    class Level(models.IntegerChoices):
        MEMBER = 1, "member"
        ADMIN = 8, "admin"
        OWNER = 15, "owner"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="organization_memberships")
    level = models.PositiveSmallIntegerField(choices=Level.choices, default=Level.MEMBER)
    joined_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "user"], name="unique_organization_membership"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.get_level_display()})"


class PersonalAPIKey(models.Model):
    """A user's API key. Only an HMAC-SHA256 digest of the secret is stored, never the secret."""

    id = models.CharField(
        primary_key=True, max_length=50, default=generate_personal_api_key_id, editable=False
    )
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="personal_api_keys")
    label = models.CharField(max_length=40)
    secure_value = models.CharField(max_length=128, unique=True, editable=False)
    mask_value = models.CharField(max_length=11, editable=False)
    scopes = models.JSONField(null=True, blank=True, default=list)
    scoped_teams = models.JSONField(null=True, blank=True, default=None)
    scoped_organizations = models.JSONField(null=True, blank=True, default=None)
    created_at = models.DateTimeField(default=now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_rolled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "personal API key"

    def __str__(self) -> str:
        return f"{self.label} ({self.mask_value})"

    @property
    def effective_scopes(self) -> list[str]:
        """Null or empty scopes are PostHog's legacy full-access keys."""
        return list(self.scopes) if self.scopes else ["*"]

    def allows_project(self, project: Project) -> bool:
        """Whether the key's project and organization scoping lets it see `project`."""
        if self.scoped_teams and project.id not in self.scoped_teams:
            return False
        return not self.scoped_organizations or str(project.organization_id) in self.scoped_organizations

    def allowed_organization_ids(self) -> set[str] | None:
        """The organizations the key may see, or None when it is not scoped at all. A key scoped to
        projects sees only those projects' organizations."""
        allowed: set[str] | None = None
        if self.scoped_organizations:
            allowed = {str(organization_id) for organization_id in self.scoped_organizations}
        if self.scoped_teams:
            team_organizations = {
                str(organization_id)
                for organization_id in Project.objects.filter(
                    id__in=[team for team in self.scoped_teams if isinstance(team, int)]
                ).values_list("organization_id", flat=True)
            }
            allowed = team_organizations if allowed is None else allowed & team_organizations
        return allowed
