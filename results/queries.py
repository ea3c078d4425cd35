"""PostHog's `/query/` protocol for experiment queries: kinds, `refresh` modes, cache and async runs.

A computed response is stored as a `QueryRun` and served from there while it is fresh (24 hours,
as PostHog caches experiment results). Its cache key covers the query, the experiment's last
change and its flag's version, so editing either computes afresh. Asynchronous runs are jobs of
the results worker (`results.tasks`, registered as the `QueryRunQueue` when the app is ready), queued
in the transaction that records the run, so a run accepted just before the web process restarts
is still computed.
"""

import hashlib
import json
import logging
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol

from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from accounts.models import Project
from experiments.models import Experiment
from results import services
from results.definitions import analysis_window, metric_analysis
from results.models import QueryRun

logger = logging.getLogger(__name__)

EXPERIMENT_QUERY = "ExperimentQuery"
EXPERIMENT_EXPOSURE_QUERY = "ExperimentExposureQuery"
SUPPORTED_QUERY_KINDS = (EXPERIMENT_QUERY, EXPERIMENT_EXPOSURE_QUERY)
# Bumped whenever the response shape changes, so older cached responses are not served.
RESPONSE_VERSION = 2
CACHE_TARGET_AGE = timedelta(hours=24)
MIN_CLIENT_REFRESH_INTERVAL = timedelta(minutes=1)
QUERY_STATUS_LIFETIME = timedelta(hours=24)

BLOCKING = "blocking"
FORCE_BLOCKING = "force_blocking"
ASYNC = "async"
LAZY_ASYNC = "lazy_async"
ASYNC_EXCEPT_ON_CACHE_MISS = "async_except_on_cache_miss"
FORCE_ASYNC = "force_async"
FORCE_CACHE = "force_cache"
REFRESH_MODES = (
    BLOCKING,
    FORCE_BLOCKING,
    ASYNC,
    LAZY_ASYNC,
    ASYNC_EXCEPT_ON_CACHE_MISS,
    FORCE_ASYNC,
    FORCE_CACHE,
)
ASYNC_MODES = (ASYNC, LAZY_ASYNC, ASYNC_EXCEPT_ON_CACHE_MISS)

QUERY_FAILED = "The query failed. Please try again."
QUERY_ABANDONED = "The query did not finish: the server stopped while running it. Please ask again."
ABANDONED_AFTER = timedelta(hours=1)


class QueryRunQueue(Protocol):
    def enqueue(self, run: QueryRun) -> None:
        """Queue the run's computation in the caller's transaction."""
        ...


_query_run_queue: QueryRunQueue | None = None


def register_query_run_queue(queue: QueryRunQueue | None) -> None:
    """Called by the results app when it is ready (and only when a task queue is configured)."""
    global _query_run_queue
    _query_run_queue = queue


def unsupported_kind_message(kind: Any) -> str:
    shown = kind if isinstance(kind, str) and len(kind) <= 100 else "<invalid>"
    return f"Query kind '{shown}' is not supported by this server. Supported kinds: {', '.join(SUPPORTED_QUERY_KINDS)}."


def refresh_mode(refresh: Any) -> str:
    """PostHog's `refresh`: absent means blocking, `true` force_blocking, `false` force_cache."""
    if refresh is None:
        return BLOCKING
    if refresh is True:
        return FORCE_BLOCKING
    if refresh is False:
        return FORCE_CACHE
    return refresh


def query_experiment(project: Project, query: dict[str, Any]) -> Experiment:
    experiment_id = query.get("experiment_id")
    if isinstance(experiment_id, bool) or not isinstance(experiment_id, int) or not 0 < experiment_id < 2**63:
        raise ValidationError({"experiment_id": ["A valid experiment id (integer) is required."]})
    experiment = (
        Experiment.objects.select_related("feature_flag", "project")
        .filter(project=project, id=experiment_id, deleted=False)
        .first()
    )
    if experiment is None:
        raise ValidationError({"experiment_id": [f"Experiment with id {experiment_id} does not exist."]})
    return experiment


def checked_query(query: Any) -> dict[str, Any]:
    if not isinstance(query, dict):
        raise ValidationError({"query": ["Expected a query object with a 'kind'."]})
    kind = query.get("kind")
    if kind not in SUPPORTED_QUERY_KINDS:
        raise ValidationError({"query": [unsupported_kind_message(kind)]})
    if kind == EXPERIMENT_QUERY and not isinstance(query.get("metric"), dict):
        raise ValidationError({"metric": ["ExperimentQuery needs a 'metric' object."]})
    return query


def query_cache_key(project: Project, query: dict[str, Any], experiment: Experiment) -> str:
    material = {
        "project": project.id,
        "query": query,
        "experiment_updated_at": experiment.updated_at.isoformat(),
        "flag_version": experiment.feature_flag.version,
        "stats_method": (experiment.stats_config or {}).get("method") or "bayesian",
        "response_version": RESPONSE_VERSION,
    }
    encoded = json.dumps(material, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()


def validate_for_experiment(experiment: Experiment, query: dict[str, Any]) -> None:
    """Everything about the query that can fail without reading events, checked before any
    mode answers, so an asynchronous run is never queued for a query that cannot succeed."""
    if query["kind"] == EXPERIMENT_QUERY:
        metric_analysis(experiment=experiment, metric=query["metric"], as_of=None, now=timezone.now())
    else:
        analysis_window(experiment, None, timezone.now())


def compute(experiment: Experiment, query: dict[str, Any]) -> dict[str, Any]:
    if query["kind"] == EXPERIMENT_QUERY:
        return services.experiment_metric_result(experiment=experiment, metric=query["metric"])
    return services.experiment_exposure_result(experiment=experiment)


def with_envelope(run: QueryRun, *, is_cached: bool) -> dict[str, Any]:
    last_refresh = run.completed_at
    return {
        **run.result,
        "is_cached": is_cached,
        "last_refresh": last_refresh.isoformat(),
        "next_allowed_client_refresh": (last_refresh + MIN_CLIENT_REFRESH_INTERVAL).isoformat(),
        "cache_target_age": (last_refresh + CACHE_TARGET_AGE).isoformat(),
        "cache_key": run.cache_key,
        "timezone": services.project_timezone_name(run.project),
        "query_status": None,
        "query_metadata": None,
        "calculation_trigger": None,
    }


def query_status(run: QueryRun) -> dict[str, Any]:
    """PostHog's `QueryStatus` of a run; `results` is the full response once it is complete."""
    complete = run.status not in QueryRun.ACTIVE_STATUSES
    return {
        "id": str(run.id),
        "query_async": run.query_async,
        "team_id": run.project_id,
        "complete": complete,
        "error": run.status in (QueryRun.Status.FAILED, QueryRun.Status.CANCELLED),
        "error_message": run.error_message,
        "results": with_envelope(run, is_cached=False) if run.status == QueryRun.Status.COMPLETE else None,
        "start_time": run.created_at.isoformat(),
        "pickup_time": run.started_at.isoformat() if run.started_at else None,
        "end_time": run.completed_at.isoformat() if run.completed_at else None,
        "expiration_time": (run.created_at + QUERY_STATUS_LIFETIME).isoformat(),
        "insight_id": None,
        "dashboard_id": None,
        "labels": None,
        "task_id": None,
        "query_progress": None,
    }


def latest_completed(project: Project, cache_key: str) -> QueryRun | None:
    return (
        QueryRun.objects.filter(project=project, cache_key=cache_key, status=QueryRun.Status.COMPLETE)
        .order_by("-completed_at")
        .first()
    )


def active_run(project: Project, cache_key: str) -> QueryRun | None:
    """The queued or running run of this key. A run older than `ABANDONED_AFTER` was lost (its
    worker died while running it, or no task queue is configured): it is marked failed, so asking
    again starts a new one."""
    QueryRun.objects.filter(
        project=project,
        cache_key=cache_key,
        status__in=QueryRun.ACTIVE_STATUSES,
        created_at__lt=timezone.now() - ABANDONED_AFTER,
    ).update(status=QueryRun.Status.FAILED, error_message=QUERY_ABANDONED, completed_at=timezone.now())
    return (
        QueryRun.objects.filter(project=project, cache_key=cache_key, status__in=QueryRun.ACTIVE_STATUSES)
        .order_by("-created_at")
        .first()
    )


def is_fresh(run: QueryRun, now: datetime) -> bool:
    return run.completed_at + CACHE_TARGET_AGE > now


def compute_and_store(
    project: Project, experiment: Experiment, query: dict[str, Any], cache_key: str
) -> QueryRun:
    started = timezone.now()
    result = compute(experiment, query)
    with transaction.atomic():
        # Only the newest computation of a key is kept as its cache entry.
        QueryRun.objects.filter(
            project=project, cache_key=cache_key, status=QueryRun.Status.COMPLETE
        ).delete()
        return QueryRun.objects.create(
            project=project,
            cache_key=cache_key,
            query=query,
            status=QueryRun.Status.COMPLETE,
            result=result,
            created_at=started,
            started_at=started,
            completed_at=timezone.now(),
        )


def query_run_enqueue(
    project: Project, experiment: Experiment, query: dict[str, Any], cache_key: str
) -> QueryRun:
    """Start an asynchronous run, or return the one already queued or running for the same key.
    The run and its job are stored together: both or neither. Without a task queue (SQLite, the
    demo of `make run`) the run is computed in this request once it is stored."""
    with transaction.atomic():
        # Requests for one experiment's queries take turns here, so two that both find no active
        # run of a key do not both start one.
        Experiment.objects.select_for_update().filter(pk=experiment.pk).exists()
        existing = active_run(project, cache_key)
        if existing is not None:
            return existing
        run = QueryRun.objects.create(project=project, cache_key=cache_key, query=query, query_async=True)
        if _query_run_queue is not None:
            _query_run_queue.enqueue(run)
        else:
            transaction.on_commit(partial(query_run_execute, run_id=run.id))
    return run


def query_run_execute(*, run_id, resumed: bool = False) -> None:
    """Compute a queued run and record its result or error; a cancelled run stays cancelled.
    `resumed`: this job was given back after its worker crashed, so the run it left running is
    taken over instead of staying "running" until it is abandoned."""
    claimable = QueryRun.ACTIVE_STATUSES if resumed else [QueryRun.Status.QUEUED]
    claimed = QueryRun.objects.filter(id=run_id, status__in=claimable).update(
        status=QueryRun.Status.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        return
    run = QueryRun.objects.select_related("project").get(id=run_id)
    try:
        experiment = query_experiment(run.project, run.query)
        result = compute(experiment, run.query)
    except ValidationError as error:
        finish(run_id, status=QueryRun.Status.FAILED, error_message=validation_message(error))
        return
    except Exception:
        logger.exception("results query %s failed", run_id)
        finish(run_id, status=QueryRun.Status.FAILED, error_message=QUERY_FAILED)
        return
    with transaction.atomic():
        # Locked, so a cancel waits for this to commit; a run cancelled while it was computed
        # keeps the key's earlier result as its cache entry.
        still_running = QueryRun.objects.select_for_update().filter(id=run_id, status=QueryRun.Status.RUNNING)
        if not still_running.exists():
            return
        QueryRun.objects.filter(
            project=run.project, cache_key=run.cache_key, status=QueryRun.Status.COMPLETE
        ).delete()
        finish(run_id, status=QueryRun.Status.COMPLETE, result=result)


def finish(run_id, *, status: str, result: dict | None = None, error_message: str | None = None) -> None:
    QueryRun.objects.filter(id=run_id, status=QueryRun.Status.RUNNING).update(
        status=status, result=result, error_message=error_message, completed_at=timezone.now()
    )


def validation_message(error: ValidationError) -> str:
    detail = error.detail
    while isinstance(detail, dict | list) and detail:
        detail = next(iter(detail.values())) if isinstance(detail, dict) else detail[0]
    return str(detail)


def query_run_cancel(*, run: QueryRun) -> None:
    """Cancel a queued or running run; a finished one is left as it is."""
    QueryRun.objects.filter(id=run.id, status__in=QueryRun.ACTIVE_STATUSES).update(
        status=QueryRun.Status.CANCELLED, completed_at=timezone.now(), error_message="Query cancelled"
    )


def query_respond(*, project: Project, query: Any, refresh: Any) -> dict[str, Any]:
    """Answer a `/query/` request the way PostHog's query runner does for each `refresh` mode."""
    query = checked_query(query)
    mode = refresh_mode(refresh)
    experiment = query_experiment(project, query)
    validate_for_experiment(experiment, query)
    cache_key = query_cache_key(project, query, experiment)
    now = timezone.now()
    cached = latest_completed(project, cache_key) if mode not in (FORCE_BLOCKING, FORCE_ASYNC) else None
    if mode == FORCE_CACHE:
        if cached is not None:
            return with_envelope(cached, is_cached=True)
        in_flight = active_run(project, cache_key)
        return {"cache_key": cache_key, "query_status": query_status(in_flight) if in_flight else None}
    if cached is not None and is_fresh(cached, now):
        response = with_envelope(cached, is_cached=True)
        in_flight = active_run(project, cache_key)
        response["query_status"] = query_status(in_flight) if in_flight else None
        return response
    if mode in (BLOCKING, FORCE_BLOCKING) or (mode == ASYNC_EXCEPT_ON_CACHE_MISS and cached is None):
        return with_envelope(compute_and_store(project, experiment, query, cache_key), is_cached=False)
    run = query_run_enqueue(project, experiment, query, cache_key)
    return {"query_status": query_status(run)}
