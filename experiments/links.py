"""An experiment's saved-metric links as its representation reads them: read once and kept on the
instance. A list's prefetch puts them there; so does the locked read of a write when it found that
there are none (`links_presence_sql`), so an experiment without links costs no query for them."""

from django.db import connection
from django.db.models import Prefetch

from experiments.models import Experiment, ExperimentToSavedMetric

LINKS_ATTRIBUTE = "prefetched_links"


def links_prefetch() -> Prefetch:
    return Prefetch(
        "experimenttosavedmetric_set",
        queryset=ExperimentToSavedMetric.objects.select_related("saved_metric").order_by("created_at", "id"),
        to_attr=LINKS_ATTRIBUTE,
    )


def links_presence_sql(experiment_alias: str) -> str:
    """A column saying whether the experiment the table alias names has any link."""
    quote = connection.ops.quote_name
    return (
        f"EXISTS (SELECT 1 FROM {quote(ExperimentToSavedMetric._meta.db_table)} l "
        f"WHERE l.{quote('experiment_id')} = {experiment_alias}.{quote('id')})"
    )


def set_links_presence(experiment: Experiment, has_links: bool) -> None:
    """Keep what a fresh read learnt of the links: an experiment without any needs no query for
    them (one with links reads them when they are first asked for)."""
    if not has_links:
        setattr(experiment, LINKS_ATTRIBUTE, [])


def experiment_links(experiment: Experiment) -> list[ExperimentToSavedMetric]:
    """The experiment's saved-metric links in their display order."""
    links = getattr(experiment, LINKS_ATTRIBUTE, None)
    if links is None:
        links = list(
            experiment.experimenttosavedmetric_set.select_related("saved_metric").order_by("created_at", "id")
        )
        setattr(experiment, LINKS_ATTRIBUTE, links)
    return links


def forget_links(experiment: Experiment) -> None:
    """Drop the links kept on the instance after they were changed, so the next read is fresh."""
    experiment.__dict__.pop(LINKS_ATTRIBUTE, None)
