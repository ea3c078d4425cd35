"""What posthog-node sends to `/batch/` (gzip by default) is accepted and stored: `capture`,
`identify`, and the `$feature_flag_called` exposures its flag getters send. See `conftest.py`."""

import pytest

from events import views as event_intake
from events.models import Event
from tests.sdk_node.conftest import node_options

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def encodings(monkeypatch) -> list[str | None]:
    """The `Content-Encoding` of every request the event intake decodes."""
    seen = []
    decode = event_intake.decode_payload

    def recording_decode(request, *args):
        seen.append(request.headers.get("Content-Encoding"))
        return decode(request, *args)

    monkeypatch.setattr(event_intake, "decode_payload", recording_decode)
    return seen


def test_capture_identify_and_exposures_are_stored(node, flags, encodings):
    remote = node.remote()
    local = node.local()
    remote.call("capture", {"distinctId": "user_0", "event": "checkout", "properties": {"amount": 3}})
    remote.call("identify", {"distinctId": "user_0", "properties": {"email": "user_0@example.com"}})
    returned = {}
    for number in range(5):
        distinct_id = f"user_{number}"
        returned[("remote", distinct_id)] = remote.call("getFeatureFlag", "fifty-fifty", distinct_id)
        returned[("local", distinct_id)] = local.call(
            "getFeatureFlag", "group-aggregated", distinct_id, node_options(distinct_id)
        )
    # The same answer read again is one exposure: the SDK deduplicates per distinct id and value.
    remote.call("getFeatureFlag", "fifty-fifty", "user_0")
    remote.call("flush")
    local.call("flush")
    assert encodings and set(encodings) == {"gzip"}

    checkout = Event.objects.get(project=node.project, event="checkout")
    assert checkout.distinct_id == "user_0"
    assert checkout.properties["amount"] == 3
    assert checkout.properties["$lib"] == "posthog-node"
    identify = Event.objects.get(project=node.project, event="$identify")
    assert identify.properties["$set"] == {"email": "user_0@example.com"}

    called = Event.objects.filter(project=node.project, event="$feature_flag_called")
    assert called.count() == 10
    for event in called:
        source = "local" if event.properties["locally_evaluated"] else "remote"
        flag = "fifty-fifty" if source == "remote" else "group-aggregated"
        assert event.properties["$feature_flag"] == flag
        assert event.properties["$feature_flag_response"] == returned[(source, event.distinct_id)]
        assert event.properties[f"$feature/{flag}"] == returned[(source, event.distinct_id)]
        assert event.properties["$feature_flag_id"] == flags[flag].id
        assert event.properties["$lib"] == "posthog-node"
    from_server = called.filter(properties__locally_evaluated=False)
    assert from_server.count() == 5
    assert {event.properties["$feature_flag_reason"] for event in from_server} == {"Matched condition set 1"}
    from_definitions = called.filter(properties__locally_evaluated=True)
    assert all(event.properties["$groups"]["company"] for event in from_definitions)


def test_uncompressed_batches_and_shutdown_flush_are_stored(node, encodings):
    client = node.remote(disableCompression=True, flushAt=10)
    for number in range(25):
        client.call("capture", {"distinctId": f"user_{number}", "event": "pageview"})
    client.call("captureImmediate", {"distinctId": "user_0", "event": "signup"})
    assert Event.objects.filter(project=node.project, event="signup").count() == 1
    node.close()  # shutdown() flushes what is still queued
    assert Event.objects.filter(project=node.project, event="pageview").count() == 25
    assert set(encodings) == {None}
