"""The experiment lifecycle: one state machine, in one place.

    draft ──launch──▶ running ──pause──▶ paused ──resume──▶ running
    running|paused ──end / ship_variant──▶ stopped ──ship_variant──▶ stopped
    stopped ──archive──▶ stopped+archived ──unarchive──▶ stopped
    running|paused|stopped ──reset──▶ draft

Status is derived: `draft` (no start date), `running` (started, not ended, flag active), `paused`
(started, not ended, flag inactive — never stored), `stopped` (ended). `TRANSITIONS` says which
transition is legal from which status; every refusal is one of the message constants below, which
are PostHog's strings. Each transition runs in one transaction with the experiment and its flag
locked, re-reads the status under the lock, and changes the experiment and its flag together.
"""

from copy import deepcopy
from datetime import datetime
from typing import Any

from django.db import models, transaction
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from accounts.models import User
from activity.services import activity_log_record, changes_between
from approvals.gate import approval_gate
from approvals.observer import Facet, record, state
from experiments.metrics import with_fingerprints
from experiments.models import Experiment
from experiments.validation import validate_flag_for_experiment
from flags.models import FeatureFlag
from flags.services import flag_lock, flag_snapshot, flag_write

EXPERIMENT_ACTIVITY_SCOPE = "Experiment"

ALREADY_LAUNCHED = "Experiment has already been launched."
NOT_LAUNCHED = "Experiment has not been launched yet."
ALREADY_ENDED = "Experiment has already ended."
ALREADY_PAUSED = "Experiment is already paused."
NOT_PAUSED = "Experiment is not paused."
ALREADY_DRAFT = "Experiment is already in draft state."
ALREADY_ARCHIVED = "Experiment is already archived."
MUST_END_BEFORE_ARCHIVE = "Experiment must be ended before it can be archived."
NOT_ARCHIVED = "Experiment is not archived."
FLAG_DELETED_CANNOT_LAUNCH = "Experiment cannot be launched because its feature flag has been deleted."
VARIANT_NOT_FOUND = "Variant '{variant_key}' not found on feature flag."
RELEASE_TO_EVERYONE_DESCRIPTION = (
    "Added automatically when the experiment was ended to keep only one variant."
)


class ExperimentStatus(models.TextChoices):
    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


class Transition(models.TextChoices):
    LAUNCH = "launch"
    PAUSE = "pause"
    RESUME = "resume"
    END = "end"
    SHIP_VARIANT = "ship_variant"
    RESET = "reset"
    ARCHIVE = "archive"
    UNARCHIVE = "unarchive"


DRAFT, RUNNING, PAUSED, STOPPED = (
    ExperimentStatus.DRAFT,
    ExperimentStatus.RUNNING,
    ExperimentStatus.PAUSED,
    ExperimentStatus.STOPPED,
)

# For each transition and current status: None when legal, else the refusal message.
# Archive and unarchive also depend on `archived` (checked first, see `refusal`).
TRANSITIONS: dict[Transition, dict[ExperimentStatus, str | None]] = {
    Transition.LAUNCH: {
        DRAFT: None,
        RUNNING: ALREADY_LAUNCHED,
        PAUSED: ALREADY_LAUNCHED,
        STOPPED: ALREADY_LAUNCHED,
    },
    Transition.PAUSE: {DRAFT: NOT_LAUNCHED, RUNNING: None, PAUSED: ALREADY_PAUSED, STOPPED: ALREADY_ENDED},
    Transition.RESUME: {DRAFT: NOT_LAUNCHED, RUNNING: NOT_PAUSED, PAUSED: None, STOPPED: ALREADY_ENDED},
    Transition.END: {DRAFT: NOT_LAUNCHED, RUNNING: None, PAUSED: None, STOPPED: ALREADY_ENDED},
    Transition.SHIP_VARIANT: {DRAFT: NOT_LAUNCHED, RUNNING: None, PAUSED: None, STOPPED: None},
    Transition.RESET: {DRAFT: ALREADY_DRAFT, RUNNING: None, PAUSED: None, STOPPED: None},
    Transition.ARCHIVE: {
        DRAFT: MUST_END_BEFORE_ARCHIVE,
        RUNNING: MUST_END_BEFORE_ARCHIVE,
        PAUSED: MUST_END_BEFORE_ARCHIVE,
        STOPPED: None,
    },
    Transition.UNARCHIVE: {DRAFT: None, RUNNING: None, PAUSED: None, STOPPED: None},
}

ACTIVITY_NAMES = {
    Transition.LAUNCH: "launched",
    Transition.PAUSE: "paused",
    Transition.RESUME: "resumed",
    Transition.END: "ended",
    Transition.SHIP_VARIANT: "variant_shipped",
    Transition.RESET: "reset",
    Transition.ARCHIVE: "archived",
    Transition.UNARCHIVE: "unarchived",
}

EXPERIMENT_LIFECYCLE_FIELDS = ("start_date", "end_date", "archived", "conclusion", "conclusion_comment")

# The approval policy key of each transition, and which flag change it governs first.
APPROVAL_KEYS = {
    Transition.LAUNCH: "experiment.launch",
    Transition.PAUSE: "experiment.pause",
    Transition.RESUME: "experiment.resume",
    Transition.END: "experiment.end",
    Transition.SHIP_VARIANT: "experiment.ship_variant",
    Transition.RESET: "experiment.reset",
    Transition.ARCHIVE: "experiment.archive",
    Transition.UNARCHIVE: "experiment.archive",
}
FLAG_CHANGE_OF_TRANSITION = {
    Transition.LAUNCH: "enable",
    Transition.PAUSE: "disable",
    Transition.RESUME: "enable",
    Transition.SHIP_VARIANT: "update",
}


def gated_transition(transition: Transition):
    """Gate a transition function: its own `experiment.*` key governs it (and the flag change it
    makes) before the matching `feature_flag.*` key."""
    flag_change = FLAG_CHANGE_OF_TRANSITION.get(transition)
    return approval_gate(
        name=f"experiments.{transition.value}",
        resource_type="experiment",
        resource=lambda kwargs: kwargs["experiment"],
        project=lambda kwargs: kwargs["experiment"].project,
        flag_action_keys=lambda kwargs: {flag_change: [APPROVAL_KEYS[transition]]} if flag_change else {},
    )


def experiment_status(experiment: Experiment, flag: FeatureFlag | None = None) -> ExperimentStatus:
    """The status a client sees. `paused` is a running experiment whose flag is inactive."""
    flag = flag if flag is not None else experiment.feature_flag
    if experiment.start_date is None:
        return DRAFT
    if experiment.end_date is not None:
        return STOPPED
    return RUNNING if flag.active else PAUSED


def refusal(transition: Transition, experiment: Experiment, flag: FeatureFlag) -> str | None:
    """Why `transition` is not allowed now, or None when it is."""
    if transition == Transition.ARCHIVE and experiment.archived:
        return ALREADY_ARCHIVED
    if transition == Transition.UNARCHIVE and not experiment.archived:
        return NOT_ARCHIVED
    return TRANSITIONS[transition][experiment_status(experiment, flag)]


def lock_experiment_and_flag(experiment_id: int) -> tuple[Experiment, FeatureFlag]:
    """Lock the experiment row, then its flag row (always in this order, so locks cannot deadlock)."""
    experiment = Experiment.objects.select_for_update().get(pk=experiment_id)
    flag = flag_lock(flag_id=experiment.feature_flag_id)
    experiment.feature_flag = flag
    return experiment, flag


def assert_launchable(flag: FeatureFlag) -> None:
    """The flag guards of launching (also used when a PATCH sets a draft's start_date)."""
    if flag.deleted:
        raise ValidationError(FLAG_DELETED_CANNOT_LAUNCH)
    validate_flag_for_experiment(flag.variants)


def lifecycle_snapshot(experiment: Experiment) -> dict[str, Any]:
    """The fields transitions change, with the derived status (so activity shows running → paused)."""
    snapshot = {field: getattr(experiment, field) for field in EXPERIMENT_LIFECYCLE_FIELDS}
    snapshot["status"] = experiment_status(experiment).value
    return snapshot


def record_transition(
    *,
    transition: Transition | str,
    experiment: Experiment,
    user: User | None,
    experiment_before: dict[str, Any],
    flag_before: dict[str, Any],
    extra_changes: list[dict[str, Any]] | None = None,
) -> None:
    """One activity entry for a transition, with the experiment's and the flag's changed fields."""
    changes = changes_between(EXPERIMENT_ACTIVITY_SCOPE, experiment_before, lifecycle_snapshot(experiment))
    changes += changes_between("FeatureFlag", flag_before, flag_snapshot(experiment.feature_flag))
    changes += extra_changes or []
    if isinstance(transition, Transition):
        record(
            Facet(
                [APPROVAL_KEYS[transition]],
                "experiment",
                str(experiment.id),
                f"{transition.label} experiment '{experiment.name}'",
                state({"status": experiment_before["status"]}),
                state({"status": experiment_status(experiment).value}),
            )
        )
    activity = ACTIVITY_NAMES[transition] if isinstance(transition, Transition) else transition
    activity_log_record(
        project=experiment.project,
        user=user,
        scope=EXPERIMENT_ACTIVITY_SCOPE,
        item_id=experiment.id,
        activity=activity,
        name=experiment.name,
        changes=changes,
    )


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


def begin(transition: Transition, experiment_id: int) -> tuple[Experiment, FeatureFlag, dict, dict]:
    """Lock, re-read the status under the lock, and refuse an illegal transition."""
    experiment, flag = lock_experiment_and_flag(experiment_id)
    message = refusal(transition, experiment, flag)
    if message:
        raise ValidationError(message)
    return experiment, flag, lifecycle_snapshot(experiment), flag_snapshot(flag)


def start_running(
    experiment: Experiment, flag: FeatureFlag, *, user: User | None, start_date: datetime
) -> None:
    """Launch mechanics shared by `experiment_launch` and a PATCH that sets a draft's start_date:
    guard the flag, set the start date, refresh fingerprints, activate the flag."""
    assert_launchable(flag)
    experiment.start_date = start_date
    refresh_fingerprints(experiment)
    flag_write(flag=flag, user=user, changes={"active": True})


@gated_transition(Transition.LAUNCH)
def experiment_launch(*, experiment: Experiment, user: User | None) -> Experiment:
    """Launch a draft: start_date = now and the flag becomes active (its release conditions are
    untouched). Raises if not a draft, if the flag is deleted, or lacks two variants / `control`."""
    with transaction.atomic():
        experiment, flag, before, flag_before = begin(Transition.LAUNCH, experiment.pk)
        start_running(experiment, flag, user=user, start_date=timezone.now())
        experiment.save()
        record_transition(
            transition=Transition.LAUNCH,
            experiment=experiment,
            user=user,
            experiment_before=before,
            flag_before=flag_before,
        )
    return experiment


@gated_transition(Transition.PAUSE)
def experiment_pause(*, experiment: Experiment, user: User | None) -> Experiment:
    """Pause a running experiment: its flag becomes inactive, so SDKs stop assigning variants."""
    with transaction.atomic():
        experiment, flag, before, flag_before = begin(Transition.PAUSE, experiment.pk)
        flag_write(flag=flag, user=user, changes={"active": False})
        record_transition(
            transition=Transition.PAUSE,
            experiment=experiment,
            user=user,
            experiment_before=before,
            flag_before=flag_before,
        )
    return experiment


@gated_transition(Transition.RESUME)
def experiment_resume(*, experiment: Experiment, user: User | None) -> Experiment:
    """Resume a paused experiment: its flag becomes active again."""
    with transaction.atomic():
        experiment, flag, before, flag_before = begin(Transition.RESUME, experiment.pk)
        flag_write(flag=flag, user=user, changes={"active": True})
        record_transition(
            transition=Transition.RESUME,
            experiment=experiment,
            user=user,
            experiment_before=before,
            flag_before=flag_before,
        )
    return experiment


@gated_transition(Transition.END)
def experiment_end(
    *,
    experiment: Experiment,
    user: User | None,
    conclusion: str | None = None,
    conclusion_comment: str | None = None,
) -> Experiment:
    """End a running (or paused) experiment: end_date = now; the conclusion fields are set from
    the arguments (absent means null). The flag is not touched: users keep their variants."""
    with transaction.atomic():
        experiment, flag, before, flag_before = begin(Transition.END, experiment.pk)
        experiment.end_date = timezone.now()
        experiment.conclusion = conclusion
        experiment.conclusion_comment = conclusion_comment
        experiment.save()
        record_transition(
            transition=Transition.END,
            experiment=experiment,
            user=user,
            experiment_before=before,
            flag_before=flag_before,
        )
    return experiment


def shipped_filters(
    filters: dict[str, Any], variant_key: str, *, release_to_everyone: bool
) -> dict[str, Any]:
    """The flag filters that serve only `variant_key`: that variant at 100%, the others at 0%, in
    their order; release conditions kept (a catch-all group prepended with `release_to_everyone`);
    payloads, aggregation and the holdout kept."""
    groups = deepcopy(filters.get("groups") or [])
    if release_to_everyone:
        groups = [
            {"properties": [], "rollout_percentage": 100, "description": RELEASE_TO_EVERYONE_DESCRIPTION},
            *groups,
        ]
    variants = ((filters.get("multivariate") or {}).get("variants")) or []
    rewritten = {
        "aggregation_group_type_index": filters.get("aggregation_group_type_index"),
        "payloads": deepcopy(filters.get("payloads") or {}),
        "multivariate": {
            "variants": [
                {
                    "key": variant["key"],
                    "rollout_percentage": 100 if variant["key"] == variant_key else 0,
                    **({"name": variant["name"]} if variant.get("name") else {}),
                }
                for variant in variants
            ]
        },
        "groups": groups,
    }
    if filters.get("holdout") is not None:
        rewritten["holdout"] = deepcopy(filters["holdout"])
    return rewritten


@gated_transition(Transition.SHIP_VARIANT)
def experiment_ship_variant(
    *,
    experiment: Experiment,
    user: User | None,
    variant_key: str,
    release_to_everyone: bool = False,
    conclusion: str | None = None,
    conclusion_comment: str | None = None,
    conclusion_given: bool = False,
    conclusion_comment_given: bool = False,
) -> Experiment:
    """Roll `variant_key` out to 100% of the flag's variant distribution and end the experiment if
    it is still running. Works on stopped experiments too (end_date is then kept). The conclusion
    fields change only when given."""
    with transaction.atomic():
        experiment, flag, before, flag_before = begin(Transition.SHIP_VARIANT, experiment.pk)
        if variant_key not in flag.variant_keys:
            raise ValidationError(VARIANT_NOT_FOUND.format(variant_key=variant_key))
        flag_write(
            flag=flag,
            user=user,
            changes={
                "filters": shipped_filters(flag.filters, variant_key, release_to_everyone=release_to_everyone)
            },
        )
        if experiment.end_date is None:
            experiment.end_date = timezone.now()
        if conclusion_given:
            experiment.conclusion = conclusion
        if conclusion_comment_given:
            experiment.conclusion_comment = conclusion_comment
        experiment.save()
        record_transition(
            transition=Transition.SHIP_VARIANT,
            experiment=experiment,
            user=user,
            experiment_before=before,
            flag_before=flag_before,
            extra_changes=[
                {
                    "type": EXPERIMENT_ACTIVITY_SCOPE,
                    "action": "changed",
                    "field": "shipped_variant",
                    "before": None,
                    "after": variant_key,
                }
            ],
        )
    return experiment


@gated_transition(Transition.RESET)
def experiment_reset(*, experiment: Experiment, user: User | None) -> Experiment:
    """Back to draft: clears start/end dates, conclusion and archived. The flag is untouched."""
    with transaction.atomic():
        experiment, flag, before, flag_before = begin(Transition.RESET, experiment.pk)
        experiment.start_date = None
        experiment.end_date = None
        experiment.archived = False
        experiment.conclusion = None
        experiment.conclusion_comment = None
        refresh_fingerprints(experiment)
        experiment.save()
        record_transition(
            transition=Transition.RESET,
            experiment=experiment,
            user=user,
            experiment_before=before,
            flag_before=flag_before,
        )
    return experiment


@gated_transition(Transition.ARCHIVE)
def experiment_archive(*, experiment: Experiment, user: User | None) -> Experiment:
    """Hide an ended experiment from the default list."""
    with transaction.atomic():
        experiment, flag, before, flag_before = begin(Transition.ARCHIVE, experiment.pk)
        experiment.archived = True
        experiment.save()
        record_transition(
            transition=Transition.ARCHIVE,
            experiment=experiment,
            user=user,
            experiment_before=before,
            flag_before=flag_before,
        )
    return experiment


@gated_transition(Transition.UNARCHIVE)
def experiment_unarchive(*, experiment: Experiment, user: User | None) -> Experiment:
    """Show an archived experiment in the default list again."""
    with transaction.atomic():
        experiment, flag, before, flag_before = begin(Transition.UNARCHIVE, experiment.pk)
        experiment.archived = False
        experiment.save()
        record_transition(
            transition=Transition.UNARCHIVE,
            experiment=experiment,
            user=user,
            experiment_before=before,
            flag_before=flag_before,
        )
    return experiment


TRANSITION_FUNCTIONS = {
    Transition.LAUNCH: experiment_launch,
    Transition.PAUSE: experiment_pause,
    Transition.RESUME: experiment_resume,
    Transition.END: experiment_end,
    Transition.RESET: experiment_reset,
    Transition.ARCHIVE: experiment_archive,
    Transition.UNARCHIVE: experiment_unarchive,
}
