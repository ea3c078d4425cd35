"""Experiment results: one metric's result, and an experiment's exposures, as PostHog's `/query/` returns them.

These are the entry points the `/query/` API and the timeseries worker call. They read events and
experiments and write nothing.
"""

from datetime import datetime
from typing import Any

from experiments.models import Experiment


def experiment_metric_result(
    *, experiment: Experiment, metric: dict[str, Any], as_of: datetime | None = None
) -> dict[str, Any]:
    """The `ExperimentQueryResponse` body for one `ExperimentMetric` of `experiment`, as of `as_of`.

    `as_of` (default: now, or the end date of an ended experiment) closes the analysis window, so
    the timeseries worker gets the cumulative result at the end of each day by passing that
    instant. Returns `{"kind", "baseline", "variant_results", "breakdown_results", ...}` with no
    cache envelope. Raises `rest_framework.exceptions.ValidationError` for a metric or experiment
    that cannot be analysed (a draft, an unsupported math, no baseline variant).
    """
    raise NotImplementedError
