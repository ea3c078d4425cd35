"""Experiment holdouts: a share of users kept out of every experiment that uses the holdout."""

from django.conf import settings
from django.db import models
from django.utils.timezone import now


class ExperimentHoldout(models.Model):
    """A holdout group. `filters` is a list of release-condition groups
    `[{"properties": [...], "rollout_percentage": N, "variant": "holdout-<id>"}]`; the first group's
    rollout is the share of users excluded from linked experiments (written into their flags as
    `filters.holdout = {"id", "exclusion_percentage"}`)."""

    project = models.ForeignKey(
        "accounts.Project", on_delete=models.CASCADE, related_name="experiment_holdouts"
    )
    name = models.CharField(max_length=400)
    description = models.CharField(max_length=400, null=True, blank=True)
    filters = models.JSONField(default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name

    @property
    def exclusion_percentage(self) -> float | int | None:
        first = self.filters[0] if isinstance(self.filters, list) and self.filters else None
        return first.get("rollout_percentage") if isinstance(first, dict) else None

    def flag_holdout_filter(self) -> dict:
        """What a linked experiment's flag carries in `filters.holdout`."""
        return {"id": self.id, "exclusion_percentage": self.exclusion_percentage}
