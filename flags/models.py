"""Feature flags and cohorts.

An experiment owns (or shares) a multivariate feature flag; the flag is what SDKs evaluate, so it is
the single source of truth for an experiment's variants, rollout and holdout. Every write to a flag
goes through `flags/services.py`.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.timezone import now


class FeatureFlag(models.Model):
    """A PostHog feature flag. `filters` holds `groups`, `multivariate`, `payloads`,
    `aggregation_group_type_index` and `holdout`. `version` increments on every change."""

    class CreationContext(models.TextChoices):
        FEATURE_FLAGS = "feature_flags"
        EXPERIMENTS = "experiments"
        SURVEYS = "surveys"
        EARLY_ACCESS_FEATURES = "early_access_features"
        WEB_EXPERIMENTS = "web_experiments"

    class EvaluationRuntime(models.TextChoices):
        SERVER = "server", "Server"
        CLIENT = "client", "Client"
        ALL = "all", "All"

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="feature_flags")
    key = models.CharField(max_length=400)
    name = models.TextField(blank=True, default="")
    filters = models.JSONField(default=dict)
    active = models.BooleanField(default=True)
    deleted = models.BooleanField(default=False)
    version = models.IntegerField(default=0)
    ensure_experience_continuity = models.BooleanField(null=True, blank=True, default=False)
    has_encrypted_payloads = models.BooleanField(null=True, blank=True, default=False)
    # A remote-config flag is a boolean flag whose "true" payload is a configuration that servers
    # read through the `remote_config` endpoint; with `has_encrypted_payloads` its payloads are
    # stored encrypted (`flags/payload_encryption.py`) and it is never sent to SDKs for evaluation.
    is_remote_configuration = models.BooleanField(null=True, blank=True, default=False)
    tags = models.JSONField(default=list, blank=True)
    evaluation_runtime = models.CharField(
        max_length=10, choices=EvaluationRuntime.choices, default=EvaluationRuntime.ALL, null=True, blank=True
    )
    creation_context = models.CharField(
        max_length=40, choices=CreationContext.choices, default=CreationContext.FEATURE_FLAGS
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    last_modified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "key"], condition=Q(deleted=False), name="unique_live_flag_key_per_project"
            ),
        ]
        indexes = [models.Index(fields=["project", "deleted", "key"], name="flag_project_live_key")]

    def __str__(self) -> str:
        return self.key

    @property
    def variants(self) -> list[dict]:
        multivariate = (self.filters or {}).get("multivariate") or {}
        variants = multivariate.get("variants") if isinstance(multivariate, dict) else None
        return variants if isinstance(variants, list) else []

    @property
    def variant_keys(self) -> list[str]:
        return [variant.get("key") for variant in self.variants if isinstance(variant, dict)]


class Cohort(models.Model):
    """A group of persons defined by `filters` (a property tree). This server stores cohort
    definitions; it does not compute membership from events (a cohort is matched by its properties)."""

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="cohorts")
    name = models.CharField(max_length=400, null=True, blank=True)
    description = models.CharField(max_length=1000, blank=True, default="")
    filters = models.JSONField(null=True, blank=True, default=dict)
    groups = models.JSONField(default=list, blank=True)
    is_static = models.BooleanField(default=False)
    is_calculating = models.BooleanField(default=False)
    deleted = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name or f"Cohort {self.pk}"
