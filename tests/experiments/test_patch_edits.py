"""`lifecycle.PATCH_EDITS`: every PATCH edit of a lifecycle field, with the transition it is, the
approval key that gates it and the activity it is logged under; PostHog's gaps included."""

from datetime import UTC, datetime

import pytest

from experiments.lifecycle import Transition, patch_activity, patch_edits, patch_launches

T0 = datetime(2024, 1, 1, tzinfo=UTC)
T1 = datetime(2024, 1, 15, tzinfo=UTC)

# (stored, sent) -> (transition, approval key of its own or None, activity name)
CASES = [
    ({"deleted": False}, {"deleted": True}, None, "experiment.delete", "deleted"),
    ({"deleted": True}, {"deleted": False}, None, None, "restored"),
    ({"start_date": T0}, {"start_date": None}, Transition.RESET, None, "reset"),
    ({"start_date": None}, {"start_date": T0}, Transition.LAUNCH, "experiment.launch", "launched"),
    ({"end_date": None}, {"end_date": T1}, Transition.END, "experiment.end", "updated"),
    ({"archived": False}, {"archived": True}, Transition.ARCHIVE, "experiment.archive", "updated"),
    ({"archived": True}, {"archived": False}, Transition.UNARCHIVE, "experiment.archive", "updated"),
]
NOT_EDITS = [
    ({"start_date": T0}, {"start_date": T1}),
    ({"end_date": T0}, {"end_date": T1}),
    ({"end_date": T0}, {"end_date": None}),
    ({"archived": True}, {"archived": True}),
    ({"deleted": False}, {"deleted": False}),
    ({"start_date": None}, {"name": "Renamed"}),
]


@pytest.mark.parametrize(("stored", "sent", "transition", "approval_key", "activity"), CASES)
def test_each_lifecycle_edit(stored, sent, transition, approval_key, activity):
    [edit] = patch_edits(stored, sent)
    assert edit.transition == transition
    assert edit.approval_key == approval_key
    assert patch_activity([edit]) == activity
    assert patch_launches([edit]) is (transition == Transition.LAUNCH)


@pytest.mark.parametrize(("stored", "sent"), NOT_EDITS)
def test_other_changes_are_plain_updates(stored, sent):
    assert patch_edits(stored, sent) == []
    assert patch_activity([]) == "updated"


def test_deleting_names_the_activity_before_any_transition():
    edits = patch_edits(
        {"deleted": False, "start_date": None, "archived": False},
        {"deleted": True, "start_date": T0, "archived": True},
    )
    assert [edit.field for edit in edits] == ["deleted", "start_date", "archived"]
    assert patch_activity(edits) == "deleted"
    assert patch_launches(edits)
