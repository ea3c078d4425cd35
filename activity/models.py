"""The activity log: who changed what, when, with the before/after of each changed field."""

import uuid

from django.conf import settings
from django.db import models
from django.utils.timezone import now


class ActivityLog(models.Model):
    """One recorded change. `scope` is the kind of thing changed (`Experiment`, `FeatureFlag`), `item_id`
    its id, `activity` what happened (`created`, `updated`, `launched`, ...), and `detail` holds
    `{name, type, changes: [{type, action, field, before, after}], ...}`."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(
        "accounts.Project", on_delete=models.CASCADE, null=True, blank=True, related_name="activity_logs"
    )
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, null=True, blank=True, related_name="activity_logs"
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    is_system = models.BooleanField(default=False)
    activity = models.CharField(max_length=79)
    scope = models.CharField(max_length=79)
    item_id = models.CharField(max_length=72, null=True, blank=True)
    detail = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["project", "scope", "item_id"], name="activity_project_scope_item"),
            models.Index(fields=["project", "-created_at"], name="activity_project_created"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(project__isnull=False) | models.Q(organization__isnull=False),
                name="activity_has_project_or_organization",
            )
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.item_id} {self.activity}"
