"""Saved (shared) metrics: their writes, and the links experiments keep to them.

Each write runs in one transaction with the rows it changes locked and logs its activity under the
experiment scope, as PostHog does."""

from copy import deepcopy
from typing import Any

from django.db import transaction
from rest_framework.exceptions import ValidationError

from accounts.models import Project, User
from activity.services import activity_log_changes, activity_log_record, changes_between
from experiments.lifecycle import EXPERIMENT_ACTIVITY_SCOPE
from experiments.metrics import assign_metric_uuids
from experiments.models import Experiment, ExperimentSavedMetric, ExperimentToSavedMetric
from experiments.validation import SAVED_METRIC_NOT_IN_PROJECT


def resolve_saved_metrics(
    project: Project, saved_metrics_ids: list[dict] | None
) -> dict[int, ExperimentSavedMetric]:
    """The saved metrics referenced, all of which must belong to `project`."""
    if not saved_metrics_ids:
        return {}
    ids = [item["id"] for item in saved_metrics_ids]
    found = {
        metric.id: metric for metric in ExperimentSavedMetric.objects.filter(project=project, id__in=ids)
    }
    if len(found) != len(set(ids)) or len(ids) != len(set(ids)):
        raise ValidationError(SAVED_METRIC_NOT_IN_PROJECT)
    return found


def link_uuids_by_type(links: list[tuple[ExperimentSavedMetric, dict]]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {"primary": [], "secondary": []}
    for saved_metric, metadata in links:
        uuid = (saved_metric.query or {}).get("uuid")
        if uuid:
            kind = "primary" if (metadata or {}).get("type", "primary") == "primary" else "secondary"
            result[kind].append(uuid)
    return result


def sync_saved_metric_links(
    experiment: Experiment,
    *,
    user: User | None,
    saved_metrics_ids: list[dict],
    saved_metrics: dict[int, ExperimentSavedMetric],
) -> None:
    """Make the experiment's links match `saved_metrics_ids`, in place, logging each link change."""
    existing = {
        link.saved_metric_id: link
        for link in experiment.experimenttosavedmetric_set.select_related("saved_metric")
    }
    wanted = {item["id"]: item.get("metadata") or {} for item in saved_metrics_ids}

    def log(
        activity: str, saved_metric: ExperimentSavedMetric, before: dict | None, after: dict | None
    ) -> None:
        changes = changes_between(EXPERIMENT_ACTIVITY_SCOPE, {"metadata": before}, {"metadata": after})
        activity_log_record(
            project=experiment.project,
            user=user,
            scope=EXPERIMENT_ACTIVITY_SCOPE,
            item_id=experiment.id,
            activity=activity,
            name=saved_metric.name,
            changes=changes,
            detail_type="saved_metric_config",
        )

    for saved_metric_id, link in existing.items():
        if saved_metric_id not in wanted:
            link.delete()
            log("deleted", link.saved_metric, link.metadata, None)
    for saved_metric_id, metadata in wanted.items():
        link = existing.get(saved_metric_id)
        if link is None:
            ExperimentToSavedMetric.objects.create(
                experiment=experiment, saved_metric=saved_metrics[saved_metric_id], metadata=metadata
            )
            log("created", saved_metrics[saved_metric_id], None, metadata)
        elif (link.metadata or {}) != metadata:
            before = link.metadata
            link.metadata = metadata
            link.save(update_fields=["metadata", "updated_at"])
            log("updated", link.saved_metric, before, metadata)


SAVED_METRIC_TRACKED_FIELDS = ("name", "description", "query", "metadata", "tags")


def saved_metric_snapshot(saved_metric: ExperimentSavedMetric) -> dict[str, Any]:
    return {field: deepcopy(getattr(saved_metric, field)) for field in SAVED_METRIC_TRACKED_FIELDS}


def saved_metric_create(
    *,
    project: Project,
    user: User | None,
    name: str,
    query: dict,
    description: str | None = None,
    metadata: dict | None = None,
    tags: list[str] | None = None,
) -> ExperimentSavedMetric:
    """Create a shared metric; its query gets a uuid when it has none."""
    query = deepcopy(query)
    if not query.get("uuid"):
        query["uuid"] = assign_metric_uuids([query], seen=set())[0]["uuid"]
    with transaction.atomic():
        saved_metric = ExperimentSavedMetric.objects.create(
            project=project,
            created_by=user,
            name=name,
            description=description,
            query=query,
            metadata=metadata or {},
            tags=tags or [],
        )
        activity_log_record(
            project=project,
            user=user,
            scope=EXPERIMENT_ACTIVITY_SCOPE,
            item_id=saved_metric.id,
            activity="created",
            name=name,
            detail_type="shared_metric",
        )
    return saved_metric


def saved_metric_update(
    *, saved_metric: ExperimentSavedMetric, user: User | None, changes: dict[str, Any]
) -> ExperimentSavedMetric:
    with transaction.atomic():
        saved_metric = ExperimentSavedMetric.objects.select_for_update().get(pk=saved_metric.pk)
        before = saved_metric_snapshot(saved_metric)
        if "query" in changes:
            query = deepcopy(changes["query"])
            if not query.get("uuid"):
                query["uuid"] = (saved_metric.query or {}).get("uuid") or assign_metric_uuids(
                    [query], seen=set()
                )[0]["uuid"]
            changes = {**changes, "query": query}
        for field, value in changes.items():
            setattr(saved_metric, field, value)
        saved_metric.save()
        activity_log_changes(
            project=saved_metric.project,
            user=user,
            scope=EXPERIMENT_ACTIVITY_SCOPE,
            item_id=saved_metric.id,
            activity="updated",
            before=before,
            after=saved_metric_snapshot(saved_metric),
            name=saved_metric.name,
            detail_type="shared_metric",
        )
    return saved_metric


def saved_metric_delete(*, saved_metric: ExperimentSavedMetric, user: User | None) -> None:
    """Delete a shared metric; the experiments using it lose the link (logged on each experiment)."""
    with transaction.atomic():
        saved_metric = ExperimentSavedMetric.objects.select_for_update().get(pk=saved_metric.pk)
        for link in saved_metric.experimenttosavedmetric_set.select_related("experiment"):
            activity_log_record(
                project=saved_metric.project,
                user=user,
                scope=EXPERIMENT_ACTIVITY_SCOPE,
                item_id=link.experiment_id,
                activity="deleted",
                name=saved_metric.name,
                changes=changes_between(
                    EXPERIMENT_ACTIVITY_SCOPE, {"metadata": link.metadata}, {"metadata": None}
                ),
                detail_type="saved_metric_config",
            )
        activity_log_record(
            project=saved_metric.project,
            user=user,
            scope=EXPERIMENT_ACTIVITY_SCOPE,
            item_id=saved_metric.id,
            activity="deleted",
            name=saved_metric.name,
            detail_type="shared_metric",
        )
        saved_metric.delete()
