"""Every write of an existing experiment starts here: its row and its flag's row, locked and read in
one statement, with everything the experiment's representation shows.

The statement is written out once per process (`experiments_api.rows`): through the ORM, building
its SQL (five tables, a hundred columns) cost more CPU than everything else a launch or a reset
does in Python.
"""

from functools import cache

from django.db import connection, models

from accounts.models import User
from experiments.links import links_presence_sql, set_links_presence
from experiments.models import Experiment
from experiments_api.rows import model_columns, row_instances
from flags.models import FeatureFlag
from holdouts.models import ExperimentHoldout


@cache
def _lock_statement(include_deleted: bool) -> str:
    quote = connection.ops.quote_name

    def table(model: type[models.Model]) -> str:
        return quote(model._meta.db_table)

    selected = [
        *model_columns("e", Experiment),
        *model_columns("f", FeatureFlag),
        *model_columns("c", User),
        *model_columns("h", ExperimentHoldout),
        *model_columns("hc", User),
        links_presence_sql("e"),
    ]
    live = "" if include_deleted else f" AND NOT e.{quote('deleted')}"
    return (
        f"SELECT {', '.join(selected)} FROM {table(Experiment)} e "
        f"JOIN {table(FeatureFlag)} f ON f.{quote('id')} = e.{quote('feature_flag_id')} "
        f"LEFT JOIN {table(User)} c ON c.{quote('id')} = e.{quote('created_by_id')} "
        f"LEFT JOIN {table(ExperimentHoldout)} h ON h.{quote('id')} = e.{quote('holdout_id')} "
        f"LEFT JOIN {table(User)} hc ON hc.{quote('id')} = h.{quote('created_by_id')} "
        f"WHERE e.{quote('id')} = %s AND e.{quote('project_id')} = %s{live} "
        "FOR UPDATE OF e, f"
    )


def lock_experiment_and_flag(
    experiment: Experiment, *, include_deleted: bool = False
) -> tuple[Experiment, FeatureFlag]:
    """Lock the experiment's row and its flag's row until the surrounding transaction ends, and
    read them with the rows the experiment's representation shows (its author, its holdout and the
    holdout's author, whether it has saved-metric links), so the result can be rendered without
    reading it again. Only `experiment`'s id and project are used (the caller need not have read
    the row). Raises `Experiment.DoesNotExist` when its project has no such experiment, or it is
    deleted and `include_deleted` is not set.

    Every writer that takes both locks an experiment before its flag (holdout writes lock their
    experiments first, `holdouts.services.linked_flags`), so two writers cannot deadlock here."""
    project = experiment.project
    with connection.cursor() as cursor:
        cursor.execute(_lock_statement(include_deleted), [experiment.pk, project.id])
        row = cursor.fetchone()
    if row is None:
        raise Experiment.DoesNotExist("No experiment of this project matches the given id.")
    (locked, flag, created_by, holdout, holdout_created_by), (has_links,) = row_instances(
        row, Experiment, FeatureFlag, User, ExperimentHoldout, User
    )
    locked.project = project
    flag.project = project
    locked.feature_flag = flag
    locked.created_by = created_by
    if holdout is None and locked.holdout_id is not None:
        # The statement waited for the lock while another write moved the experiment to another
        # holdout: PostgreSQL rechecks the locked row against the holdout row it had joined before,
        # which no longer matches, so the join came back empty. The holdout is read as it now is.
        holdout = ExperimentHoldout.objects.select_related("created_by").get(pk=locked.holdout_id)
        holdout_created_by = holdout.created_by
    if holdout is not None:
        holdout.created_by = holdout_created_by
    locked.holdout = holdout
    set_links_presence(locked, has_links)
    return locked, flag
