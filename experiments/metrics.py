"""Metric identity: uuids, fingerprints and the ordered-uuid lists that name them.

A fingerprint identifies a metric's results: it changes whenever anything that changes the numbers
changes (the metric definition, the start date, the statistics method, exposure criteria, matured
users, excluded variants), so stored results and recalculation requests are keyed by it.
"""

import hashlib
import json
from copy import deepcopy
from datetime import datetime
from typing import Any
from uuid import uuid4

from experiments.models import Experiment

FINGERPRINT_IGNORED_KEYS = ("uuid", "fingerprint", "name")


def assign_metric_uuids(metrics: list[dict] | None, *, seen: set[str]) -> list[dict] | None:
    """A copy of `metrics` where every metric has a uuid unique within `seen` (which is updated).

    A missing or empty uuid is generated; a uuid already in `seen` is regenerated, so the first
    occurrence keeps it."""
    if metrics is None:
        return None
    prepared = deepcopy(metrics)
    for metric in prepared:
        original = metric.get("uuid")
        if not original or original in seen:
            metric["uuid"] = str(uuid4())
        seen.add(metric["uuid"])
    return prepared


def regenerate_metric_uuids(metrics: list[dict] | None) -> tuple[list[dict] | None, dict[str, str]]:
    """A copy with every uuid replaced, and the old-to-new mapping (for duplicates)."""
    if metrics is None:
        return None, {}
    prepared = deepcopy(metrics)
    remap: dict[str, str] = {}
    for metric in prepared:
        new_uuid = str(uuid4())
        if metric.get("uuid"):
            remap[metric["uuid"]] = new_uuid
        metric["uuid"] = new_uuid
    return prepared, remap


def remap_ordering(ordering: list[str] | None, remap: dict[str, str]) -> list[str] | None:
    if ordering is None:
        return None
    return [remap.get(uuid, uuid) for uuid in ordering]


def compute_metric_fingerprint(
    metric: dict[str, Any],
    *,
    start_date: datetime | None,
    stats_method: str,
    exposure_criteria: dict | None,
    only_count_matured_users: bool,
    excluded_variants: list[str] | None,
) -> str:
    """A 64-hex SHA-256 over everything that determines the metric's results."""
    definition = {key: value for key, value in metric.items() if key not in FINGERPRINT_IGNORED_KEYS}
    material = {
        "metric": definition,
        "start_date": start_date.isoformat() if start_date else None,
        "stats_method": stats_method,
        "exposure_criteria": exposure_criteria or {},
        "only_count_matured_users": bool(only_count_matured_users),
        "excluded_variants": sorted(excluded_variants or []),
    }
    encoded = json.dumps(material, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()


def with_fingerprints(
    metrics: list[dict] | None,
    *,
    start_date: datetime | None,
    stats_config: dict | None,
    exposure_criteria: dict | None,
    only_count_matured_users: bool,
    excluded_variants: list[str] | None,
) -> list[dict] | None:
    if metrics is None:
        return None
    stats_method = (stats_config or {}).get("method") or "bayesian"
    result = []
    for metric in metrics:
        copy = deepcopy(metric)
        copy["fingerprint"] = compute_metric_fingerprint(
            copy,
            start_date=start_date,
            stats_method=stats_method,
            exposure_criteria=exposure_criteria,
            only_count_matured_users=only_count_matured_users,
            excluded_variants=excluded_variants,
        )
        result.append(copy)
    return result


def metric_uuids(metrics: list[dict] | None) -> list[str]:
    return [metric["uuid"] for metric in metrics or [] if isinstance(metric, dict) and metric.get("uuid")]


def synced_ordering(ordering: list[str] | None, *, added: list[str], removed: set[str]) -> list[str]:
    """The ordering after metrics were added and removed: removed uuids dropped, new ones appended."""
    result = [uuid for uuid in ordering or [] if uuid not in removed]
    for uuid in added:
        if uuid not in result:
            result.append(uuid)
    return result


def refresh_fingerprints(experiment: Experiment) -> None:
    """Fingerprints include the start date, so they change when an experiment starts or restarts."""
    for field in ("metrics", "metrics_secondary"):
        metrics = getattr(experiment, field)
        if metrics:
            setattr(
                experiment,
                field,
                with_fingerprints(
                    metrics,
                    start_date=experiment.start_date,
                    stats_config=experiment.stats_config,
                    exposure_criteria=experiment.exposure_criteria,
                    only_count_matured_users=experiment.only_count_matured_users,
                    excluded_variants=experiment.excluded_variants,
                ),
            )
