"""Incremental per-entity rollups: a metric's entity rows are stored, and each read first refreshes
only the entities touched since the previous one.

Per-variant sums cannot be kept incrementally (a sum of squares over days is not the square of the
sums, and every window rule hangs on each entity's own first and last exposure), so what is stored
is one row per exposed entity; a read sums them up with the same statistics query a full
computation uses, which is why both always agree. An entity is refreshed when an event that can
matter to it (its exposures or metric events) was stored since the last refresh, or is timed after
the end of the window then (the window end moves forward with time). Refreshes are idempotent, so
the watermark only passes events received at least `COMMIT_LAG` ago: an event stored by a
transaction that commits late is still seen.
"""

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.utils import timezone

from results.engines.base import ExposureDefinition, MetricDefinition, RetentionMetric
from results.engines.postgres import PostgresResultsEngine
from results.models import MetricRollup
from results.statistics import VariantStatistics

COMMIT_LAG = timedelta(minutes=1)
UNUSED_FOR = timedelta(days=7)
# A definition's window end is left out of its key: it is what a refresh moves forward.
WINDOW_END_PLACEHOLDER = datetime(1970, 1, 1, tzinfo=UTC)


def rollup_definition_key(exposure: ExposureDefinition, metric: MetricDefinition) -> str:
    """What the stored rows depend on: the exposure rules and the metric, minus the moving window
    end (and retention's maturity instant, which is applied when reading)."""
    stable_exposure = dataclasses.replace(exposure, date_to=WINDOW_END_PLACEHOLDER)
    stable_metric = (
        dataclasses.replace(metric, matured_at=None) if isinstance(metric, RetentionMetric) else metric
    )
    return hashlib.sha256(repr((stable_exposure, stable_metric)).encode()).hexdigest()


def metric_rollup_statistics(
    *,
    experiment_id: int,
    exposure: ExposureDefinition,
    metric: MetricDefinition,
    matured_before: datetime | None,
) -> list[VariantStatistics] | None:
    """Refresh the metric's rollup up to `exposure.date_to` and read its per-variant statistics.

    Returns None when the rollup already covers a later window end than asked for (a result as of
    an earlier time): the caller computes that one in full. Concurrent refreshes of one rollup wait
    for each other (the rollup row is locked).
    """
    engine = PostgresResultsEngine()
    key = rollup_definition_key(exposure, metric)
    with transaction.atomic():
        rollup, created = MetricRollup.objects.select_for_update().get_or_create(
            experiment_id=experiment_id, definition_key=key, defaults={"covered_until": exposure.date_to}
        )
        if exposure.date_to < rollup.covered_until:
            return None
        started = timezone.now()
        watermark = engine.latest_event_id(
            project_id=exposure.project_id, after=rollup.event_watermark, received_before=started - COMMIT_LAG
        )
        if created:
            # Rollups of definitions nobody has read for a while (the experiment or metric changed).
            MetricRollup.objects.filter(
                experiment_id=experiment_id, refreshed_at__lt=started - UNUSED_FOR
            ).exclude(id=rollup.id).delete()
            engine.rollup_store(rollup_id=rollup.id, exposure=exposure, metric=metric, entities=None)
        else:
            dirty = engine.dirty_entities(
                exposure=exposure,
                metric=metric,
                after_event_id=rollup.event_watermark,
                covered_until=rollup.covered_until,
            )
            if dirty:
                engine.rollup_store(rollup_id=rollup.id, exposure=exposure, metric=metric, entities=dirty)
        rollup.event_watermark = watermark
        rollup.covered_until = exposure.date_to
        rollup.refreshed_at = started
        rollup.save(update_fields=["event_watermark", "covered_until", "refreshed_at"])
        return engine.rollup_statistics(rollup_id=rollup.id, metric=metric, matured_before=matured_before)
