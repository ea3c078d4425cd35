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

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import models
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from accounts.models import User
from accounts.versions import atomic_moving_versions_once
from activity.services import activity_log_record, changes_between
from approvals.gate import approval_gate
from approvals.observer import Facet, condition_state, report_facet
from experiments.flag_config import shipped_filters
from experiments.locking import lock_experiment_and_flag
from experiments.metrics import refresh_fingerprints
from experiments.models import Experiment
from experiments.validation import validate_flag_for_experiment
from experiments_api.rows import update_row
from flags.models import FeatureFlag
from flags.services import flag_apply_changes, flag_snapshot

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
# The columns a transition writes: the lifecycle fields, the metrics (their fingerprints follow the
# start date), `updated_at` and the stored `status`. The row is locked, so the others are as read.
TRANSITION_WRITTEN_FIELDS = (
    *EXPERIMENT_LIFECYCLE_FIELDS,
    "metrics",
    "metrics_secondary",
    "updated_at",
    "status",
)

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


UPDATE_APPROVAL_KEY = "experiment.update"
DELETE_APPROVAL_KEY = "experiment.delete"
UPDATED_ACTIVITY = "updated"


@dataclass(frozen=True)
class FieldEdit:
    """A PATCH edit of one lifecycle field: PostHog accepts these beside the actions.

    `applies(stored, sent)` says whether the edit is this one; `approval_key` gates it on its own
    (None: together with the other changed fields, under `experiment.update`); `activity` names
    the activity entry (None: "updated")."""

    field: str
    applies: Callable[[Any, Any], bool]
    transition: Transition | None
    approval_key: str | None
    activity: str | None
    label: str


def transition_edit(
    field: str, applies: Callable[[Any, Any], bool], transition: Transition, *, own_key: bool, logged: bool
) -> FieldEdit:
    """A row of `PATCH_EDITS` that is a transition: gated by the transition's key when `own_key`,
    logged under the transition's activity name when `logged`."""
    return FieldEdit(
        field,
        applies,
        transition,
        APPROVAL_KEYS[transition] if own_key else None,
        ACTIVITY_NAMES[transition] if logged else None,
        transition.label,
    )


def was_set(stored: Any, sent: Any) -> bool:
    return stored is None and sent is not None


def was_cleared(stored: Any, sent: Any) -> bool:
    return stored is not None and sent is None


def was_switched_on(stored: Any, sent: Any) -> bool:
    return bool(sent) and not stored


def was_switched_off(stored: Any, sent: Any) -> bool:
    return bool(stored) and not sent


# Which PATCH edits are which transition, in the order their activity names win. PostHog's gaps are
# kept on purpose: no edit checks the status (`archived` on a running experiment, `end_date` on a
# draft are accepted); only launching runs its guards; ending and (un)archiving are logged as
# "updated"; clearing a running experiment's start_date is a reset that leaves the flag active and
# is gated as an update; restoring is gated as an update.
PATCH_EDITS: tuple[FieldEdit, ...] = (
    FieldEdit("deleted", was_switched_on, None, DELETE_APPROVAL_KEY, "deleted", "Delete"),
    FieldEdit("deleted", was_switched_off, None, None, "restored", "Restore"),
    transition_edit("start_date", was_cleared, Transition.RESET, own_key=False, logged=True),
    transition_edit("start_date", was_set, Transition.LAUNCH, own_key=True, logged=True),
    transition_edit("end_date", was_set, Transition.END, own_key=True, logged=False),
    transition_edit("archived", was_switched_on, Transition.ARCHIVE, own_key=True, logged=False),
    transition_edit("archived", was_switched_off, Transition.UNARCHIVE, own_key=True, logged=False),
)


def patch_edits(stored: dict[str, Any], sent: dict[str, Any]) -> list[FieldEdit]:
    """The lifecycle edits among the sent field values, in `PATCH_EDITS` order."""
    return [
        edit
        for edit in PATCH_EDITS
        if edit.field in sent and edit.applies(stored.get(edit.field), sent[edit.field])
    ]


def patch_launches(edits: list[FieldEdit]) -> bool:
    return any(edit.transition == Transition.LAUNCH for edit in edits)


def patch_activity(edits: list[FieldEdit]) -> str:
    """The activity name of a PATCH: the first named edit's, else "updated"."""
    return next((edit.activity for edit in edits if edit.activity), UPDATED_ACTIVITY)


def report_experiment_facet(
    key: str, experiment_id: int | None, description: str, before: dict[str, Any], after: dict[str, Any]
) -> None:
    """Report an experiment change to the approval gate: `key` governs it, its conditions read the
    `before` and `after` field values."""
    report_facet(
        Facet(
            [key],
            "experiment",
            str(experiment_id) if experiment_id is not None else None,
            description,
            condition_state(before),
            condition_state(after),
        )
    )


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
    transition: Transition,
    experiment: Experiment,
    user: User | None,
    experiment_before: dict[str, Any],
    flag_before: dict[str, Any],
    extra_changes: list[dict[str, Any]],
) -> None:
    """Report the transition to the approval gate and log one activity entry for it, with the
    experiment's and the flag's changed fields."""
    changes = changes_between(EXPERIMENT_ACTIVITY_SCOPE, experiment_before, lifecycle_snapshot(experiment))
    changes += changes_between("FeatureFlag", flag_before, flag_snapshot(experiment.feature_flag))
    changes += extra_changes
    report_experiment_facet(
        APPROVAL_KEYS[transition],
        experiment.id,
        f"{transition.label} experiment '{experiment.name}'",
        {"status": experiment_before["status"]},
        {"status": experiment_status(experiment).value},
    )
    activity_log_record(
        project=experiment.project,
        user=user,
        scope=EXPERIMENT_ACTIVITY_SCOPE,
        item_id=experiment.id,
        activity=ACTIVITY_NAMES[transition],
        name=experiment.name,
        changes=changes,
    )


@contextmanager
def transition_of(
    transition: Transition, experiment: Experiment, *, user: User | None
) -> Iterator[tuple[Experiment, FeatureFlag, list[dict[str, Any]]]]:
    """One transition in one transaction: lock the experiment and its flag (raising
    `Experiment.DoesNotExist` when the project has no such live experiment), re-read the status
    under the lock and refuse an illegal transition; the body changes the locked rows (and may add
    activity changes to the yielded list); then the transition is recorded, and the project's
    counters move once."""
    with atomic_moving_versions_once():
        locked, flag = lock_experiment_and_flag(experiment)
        message = refusal(transition, locked, flag)
        if message:
            raise ValidationError(message)
        before, flag_before = lifecycle_snapshot(locked), flag_snapshot(flag)
        extra_changes: list[dict[str, Any]] = []
        yield locked, flag, extra_changes
        record_transition(
            transition=transition,
            experiment=locked,
            user=user,
            experiment_before=before,
            flag_before=flag_before,
            extra_changes=extra_changes,
        )


def save_transition(experiment: Experiment) -> None:
    """Write what a transition changed, as `Experiment.save` would (the stored status follows the
    dates; the model's signals move the project's counters). The UPDATE is written out once per
    process: the ORM took longer to build it than PostgreSQL takes to run it."""
    experiment.status = experiment.stored_status()
    update_row(experiment, TRANSITION_WRITTEN_FIELDS)


def start_running(
    experiment: Experiment, flag: FeatureFlag, *, user: User | None, start_date: datetime
) -> None:
    """Launch mechanics shared by `experiment_launch` and a PATCH that sets a draft's start_date:
    guard the flag, set the start date, refresh fingerprints, activate the flag."""
    assert_launchable(flag)
    experiment.start_date = start_date
    refresh_fingerprints(experiment)
    flag_apply_changes(flag=flag, user=user, changes={"active": True})


@gated_transition(Transition.LAUNCH)
def experiment_launch(*, experiment: Experiment, user: User | None) -> Experiment:
    """Launch a draft: start_date = now and the flag becomes active (its release conditions are
    untouched). Raises if not a draft, if the flag is deleted, or lacks two variants / `control`."""
    with transition_of(Transition.LAUNCH, experiment, user=user) as (experiment, flag, _):
        start_running(experiment, flag, user=user, start_date=timezone.now())
        save_transition(experiment)
    return experiment


@gated_transition(Transition.PAUSE)
def experiment_pause(*, experiment: Experiment, user: User | None) -> Experiment:
    """Pause a running experiment: its flag becomes inactive, so SDKs stop assigning variants."""
    with transition_of(Transition.PAUSE, experiment, user=user) as (experiment, flag, _):
        flag_apply_changes(flag=flag, user=user, changes={"active": False})
    return experiment


@gated_transition(Transition.RESUME)
def experiment_resume(*, experiment: Experiment, user: User | None) -> Experiment:
    """Resume a paused experiment: its flag becomes active again."""
    with transition_of(Transition.RESUME, experiment, user=user) as (experiment, flag, _):
        flag_apply_changes(flag=flag, user=user, changes={"active": True})
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
    with transition_of(Transition.END, experiment, user=user) as (experiment, _, _):
        experiment.end_date = timezone.now()
        experiment.conclusion = conclusion
        experiment.conclusion_comment = conclusion_comment
        save_transition(experiment)
    return experiment


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
    with transition_of(Transition.SHIP_VARIANT, experiment, user=user) as (experiment, flag, extra_changes):
        if variant_key not in flag.variant_keys:
            raise ValidationError(VARIANT_NOT_FOUND.format(variant_key=variant_key))
        flag_apply_changes(
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
        save_transition(experiment)
        extra_changes.append(
            {
                "type": EXPERIMENT_ACTIVITY_SCOPE,
                "action": "changed",
                "field": "shipped_variant",
                "before": None,
                "after": variant_key,
            }
        )
    return experiment


@gated_transition(Transition.RESET)
def experiment_reset(*, experiment: Experiment, user: User | None) -> Experiment:
    """Back to draft: clears start/end dates, conclusion and archived. The flag is untouched."""
    with transition_of(Transition.RESET, experiment, user=user) as (experiment, _, _):
        experiment.start_date = None
        experiment.end_date = None
        experiment.archived = False
        experiment.conclusion = None
        experiment.conclusion_comment = None
        refresh_fingerprints(experiment)
        save_transition(experiment)
    return experiment


@gated_transition(Transition.ARCHIVE)
def experiment_archive(*, experiment: Experiment, user: User | None) -> Experiment:
    """Hide an ended experiment from the default list."""
    with transition_of(Transition.ARCHIVE, experiment, user=user) as (experiment, _, _):
        experiment.archived = True
        save_transition(experiment)
    return experiment


@gated_transition(Transition.UNARCHIVE)
def experiment_unarchive(*, experiment: Experiment, user: User | None) -> Experiment:
    """Show an archived experiment in the default list again."""
    with transition_of(Transition.UNARCHIVE, experiment, user=user) as (experiment, _, _):
        experiment.archived = False
        save_transition(experiment)
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
