"""PostHog's Python SDK against a live server: local and remote evaluation agree, splits are right,
and the SDK's events are stored. See `conftest.py` for the harness."""

import logging
from collections import Counter

import pytest

from events.models import Event, GroupTypeMapping
from flags.evaluation import EvaluationContext, evaluate_flags, person_properties_for
from flags.models import FeatureFlag
from tests.factories import FeatureFlagFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # 7.x deprecates the single-flag getters in favour of evaluate_flags(); they still work and
    # are what most integrations call, so they are what is tested here.
    pytest.mark.filterwarnings("ignore:`get_feature_flag.*is deprecated:DeprecationWarning"),
]

HOLDOUT_ID = 7
HOLDOUT_SHARE = 20
SHIPPED_HOLDOUT_ID = 9


def multivariate(*shares: tuple[str, int]) -> dict:
    return {
        "variants": [{"key": key, "name": key.title(), "rollout_percentage": share} for key, share in shares]
    }


def everyone(**condition) -> list[dict]:
    return [{"properties": [], "rollout_percentage": 100, **condition}]


FLAG_SHAPES: dict[str, dict] = {
    "fifty-fifty": {
        "filters": {
            "groups": everyone(),
            "multivariate": multivariate(("control", 50), ("test", 50)),
            "payloads": {"control": '{"color": "grey"}', "test": '{"color": "blue"}'},
        }
    },
    "three-way": {
        "filters": {
            "groups": everyone(),
            "multivariate": multivariate(("a", 33), ("b", 33), ("c", 34)),
            "payloads": {"a": '"first"', "c": "[1, 2]"},
        }
    },
    "with-holdout": {
        "filters": {
            "groups": everyone(),
            "multivariate": multivariate(("control", 50), ("test", 50)),
            "holdout": {"id": HOLDOUT_ID, "exclusion_percentage": HOLDOUT_SHARE},
        }
    },
    "variant-override": {
        "filters": {
            "groups": [
                {
                    "properties": [
                        {"key": "email", "operator": "icontains", "value": "@vip.com", "type": "person"}
                    ],
                    "rollout_percentage": 100,
                    "variant": "control",
                },
                {"properties": [], "rollout_percentage": 100},
            ],
            "multivariate": multivariate(("control", 50), ("test", 50)),
        }
    },
    "group-aggregated": {
        "filters": {
            "groups": [{"properties": [], "rollout_percentage": 70}],
            "multivariate": multivariate(("control", 50), ("test", 50)),
            "aggregation_group_type_index": 0,
            "payloads": {"test": '{"plan": "team"}'},
        }
    },
    "paused": {
        "active": False,
        "filters": {
            "groups": everyone(),
            "multivariate": multivariate(("control", 50), ("test", 50)),
            "payloads": {"test": '{"never": "served"}'},
        },
    },
    "shipped": {
        "filters": {
            "groups": everyone(),
            "multivariate": multivariate(("control", 0), ("test", 100)),
            "holdout": {"id": SHIPPED_HOLDOUT_ID, "exclusion_percentage": 10},
            "payloads": {"test": '{"shipped": true}'},
        }
    },
    "boolean-half": {
        "filters": {"groups": [{"properties": [], "rollout_percentage": 50}], "payloads": {"true": "1"}}
    },
}


@pytest.fixture
def flag_shapes(sdk) -> dict[str, FeatureFlag]:
    GroupTypeMapping.objects.create(project=sdk.project, group_type="company", group_type_index=0)
    return {
        key: FeatureFlagFactory(project=sdk.project, key=key, **shape) for key, shape in FLAG_SHAPES.items()
    }


def call_options(distinct_id: str) -> dict:
    """Every flag decidable locally: an email for the override, a company for the group flag."""
    number = int(distinct_id.rsplit("_", 1)[1])
    email = f"{distinct_id}@vip.com" if number % 5 == 0 else f"{distinct_id}@example.com"
    return {"person_properties": {"email": email}, "groups": {"company": f"company_{number % 97}"}}


def test_remote_and_local_agree_for_1000_ids(sdk, flag_shapes):
    remote, local = sdk.remote(), sdk.local()
    assert sorted(flag["key"] for flag in local.feature_flags) == sorted(FLAG_SHAPES)

    ids = [f"user_{number}" for number in range(1000)]
    values = sdk.assert_parity(remote, local, ids, per_id=call_options)

    seen = {key: Counter(flags[key] for flags in values.values()) for key in FLAG_SHAPES}
    assert set(seen["fifty-fifty"]) == {"control", "test"}
    assert set(seen["three-way"]) == {"a", "b", "c"}
    assert set(seen["with-holdout"]) == {"control", "test", f"holdout-{HOLDOUT_ID}"}
    assert set(seen["group-aggregated"]) == {"control", "test", False}
    assert seen["paused"] == Counter({False: 1000})
    assert set(seen["shipped"]) == {"test", f"holdout-{SHIPPED_HOLDOUT_ID}"}
    assert set(seen["boolean-half"]) == {True, False}
    # Every fifth user is a VIP and gets the override; the others are split by hash.
    vip = [values[f"user_{n}"]["variant-override"] for n in range(0, 1000, 5)]
    assert set(vip) == {"control"}


def test_single_flag_reads_agree_and_match_the_spec_vectors(sdk, flag_shapes):
    FeatureFlagFactory(project=sdk.project, key="exp-flag")
    remote, local = sdk.remote(), sdk.local()
    for number in range(40):
        distinct_id = f"user_{number}"
        options = call_options(distinct_id)
        for key in [*FLAG_SHAPES, "exp-flag"]:
            from_server = remote.get_feature_flag(key, distinct_id, send_feature_flag_events=False, **options)
            from_definitions = local.get_feature_flag(
                key, distinct_id, only_evaluate_locally=True, send_feature_flag_events=False, **options
            )
            assert from_server == from_definitions, (key, distinct_id)
            payload_options = {**options, "send_feature_flag_events": False}
            assert remote.get_feature_flag_payload(key, distinct_id, **payload_options) == (
                local.get_feature_flag_payload(
                    key, distinct_id, only_evaluate_locally=True, **payload_options
                )
            ), (key, distinct_id)
    expected = {"user_1": "test", "user_2": "test", "user_3": "control", "user_6": "control"}
    for distinct_id, variant in expected.items():
        assert remote.get_feature_flag("exp-flag", distinct_id, send_feature_flag_events=False) == variant
    assert remote.get_feature_flag_payload("fifty-fifty", "user_1", **call_options("user_1")) is not None


def test_splits_over_10000_ids_are_within_two_points(sdk, flag_shapes):
    local = sdk.local()
    definitions = {flag["key"]: flag for flag in local.feature_flags}
    counts: dict[str, Counter] = {key: Counter() for key in FLAG_SHAPES}
    total = 10_000
    for number in range(total):
        distinct_id = f"user_{number}"
        options = call_options(distinct_id)
        from_sdk = local.get_all_flags(distinct_id, only_evaluate_locally=True, **options)
        context = EvaluationContext(
            distinct_id,
            person_properties_for(distinct_id, options["person_properties"]),
            groups=options["groups"],
            group_type_mapping={"0": "company"},
        )
        ours = {key: result.value for key, result in evaluate_flags(definitions.values(), context).items()}
        assert ours == from_sdk, distinct_id
        for key, value in ours.items():
            counts[key][value] += 1

    def share(key: str, value) -> float:
        return 100 * counts[key][value] / total

    for variant in ("control", "test"):
        assert abs(share("fifty-fifty", variant) - 50) <= 2
    for variant, expected in (("a", 33), ("b", 33), ("c", 34)):
        assert abs(share("three-way", variant) - expected) <= 2
    holdout = share("with-holdout", f"holdout-{HOLDOUT_ID}")
    assert abs(holdout - HOLDOUT_SHARE) <= 2
    for variant in ("control", "test"):
        assert abs(share("with-holdout", variant) - (100 - HOLDOUT_SHARE) / 2) <= 2
    assert abs(share("shipped", f"holdout-{SHIPPED_HOLDOUT_ID}") - 10) <= 2
    assert abs(share("shipped", "test") - 90) <= 2
    assert abs(share("boolean-half", True) - 50) <= 2
    # The same holdout hash holds out the same users on every flag with that share.
    assert abs(share("fifty-fifty", "control") - share("fifty-fifty", "test")) <= 4


def test_sdk_events_reach_batch_and_are_stored(sdk, flag_shapes):
    remote = sdk.client(sync_mode=True, debug=True)
    local = sdk.client(sync_mode=True, debug=True, secret_key=sdk.personal_api_key)
    local.load_feature_flags()
    returned = {}
    for number in range(5):
        distinct_id = f"user_{number}"
        returned[("remote", distinct_id)] = remote.get_feature_flag("fifty-fifty", distinct_id)
        returned[("local", distinct_id)] = local.get_feature_flag("with-holdout", distinct_id)
    remote.capture("checkout", distinct_id="user_0", properties={"amount": 3})

    called = Event.objects.filter(project=sdk.project, event="$feature_flag_called")
    assert called.count() == 10
    for event in called:
        source = "local" if event.properties["locally_evaluated"] else "remote"
        assert event.properties["$feature_flag_response"] == returned[(source, event.distinct_id)]
        assert event.properties["$lib"] == "posthog-python"
    remote_event = called.filter(properties__locally_evaluated=False).first()
    assert remote_event.properties["$feature_flag_reason"] == "Matched condition set 1"
    assert remote_event.properties["$feature_flag_id"] == flag_shapes["fifty-fifty"].id
    assert Event.objects.get(event="checkout").properties["amount"] == 3


def test_gzip_batches_from_the_background_consumer(sdk, flag_shapes):
    client = sdk.client(gzip=True)
    for number in range(25):
        client.capture("pageview", distinct_id=f"user_{number}")
    client.flush()
    assert Event.objects.filter(project=sdk.project, event="pageview").count() == 25


def test_definitions_poll_revalidates_with_the_etag(sdk, flag_shapes):
    local = sdk.local(debug=True)  # debug logging shows the 304s
    etag = local._flags_etag
    assert etag and etag.startswith('W/"')
    local.load_feature_flags()
    assert "304 Not Modified" in " ".join(sdk.log.messages())
    assert local._flags_etag == etag

    flag = flag_shapes["fifty-fifty"]
    flag.active = False
    flag.save()
    sdk.refresh()
    assert local._flags_etag != etag
    assert local.get_feature_flag("fifty-fifty", "user_1", only_evaluate_locally=True) is False


def test_a_flag_change_is_seen_by_both_clients(sdk, flag_shapes):
    remote, local = sdk.remote(), sdk.local()
    before = sdk.assert_parity(remote, local, [f"user_{n}" for n in range(40)], per_id=call_options)

    paused = flag_shapes["paused"]
    paused.active = True
    paused.save()
    shipped = flag_shapes["fifty-fifty"]
    shipped.filters = {**shipped.filters, "multivariate": multivariate(("control", 0), ("test", 100))}
    shipped.save()
    sdk.refresh()

    after = sdk.assert_parity(remote, local, [f"user_{n}" for n in range(40)], per_id=call_options)
    assert {flags["fifty-fifty"] for flags in after.values()} == {"test"}
    assert {flags["paused"] for flags in after.values()} == {"control", "test"}
    assert [flags["three-way"] for flags in after.values()] == [
        flags["three-way"] for flags in before.values()
    ]


def test_bad_credentials(sdk, flag_shapes):
    wrong_token = sdk.client(send=False, token="phc_not_a_project")
    assert wrong_token.get_feature_flag("fifty-fifty", "user_1", send_feature_flag_events=False) is None

    under_scoped = sdk.client(send=False, secret_key="phx_" + "x" * 43)
    under_scoped.load_feature_flags()
    assert under_scoped.feature_flags == []
    # Those failures are logged by the SDK, as they should be; the harness checks only the rest.
    errors = sdk.log.messages(logging.WARNING)
    assert any("401" in message for message in errors)
    sdk.log.records.clear()
