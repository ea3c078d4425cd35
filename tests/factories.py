"""One factory per model. Keys are issued through the real service so tests use real secrets."""

import factory

from accounts.models import Organization, OrganizationMembership, Project, User


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Organization {n}")


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Project {n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    first_name = factory.Sequence(lambda n: f"User{n}")
    password = factory.django.Password("correct horse battery staple")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OrganizationMembership

    organization = factory.SubFactory(OrganizationFactory)
    user = factory.SubFactory(UserFactory)
    level = OrganizationMembership.Level.MEMBER


def multivariate_filters(variants: list[tuple[str, int]] | None = None, rollout: int = 100) -> dict:
    """Flag filters with one release condition and the given (key, percentage) variants."""
    variants = variants or [("control", 50), ("test", 50)]
    return {
        "groups": [{"properties": [], "rollout_percentage": rollout}],
        "multivariate": {"variants": [{"key": key, "rollout_percentage": share} for key, share in variants]},
        "aggregation_group_type_index": None,
        "holdout": None,
    }


class FeatureFlagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "flags.FeatureFlag"

    project = factory.SubFactory(ProjectFactory)
    key = factory.Sequence(lambda n: f"flag-{n}")
    name = factory.LazyAttribute(lambda flag: f"Flag {flag.key}")
    filters = factory.LazyFunction(multivariate_filters)
    active = True
    version = 1


class CohortFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "flags.Cohort"

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"Cohort {n}")
    filters = factory.LazyFunction(
        lambda: {
            "properties": {
                "type": "OR",
                "values": [{"type": "AND", "values": [{"key": "plan", "value": "pro", "type": "person"}]}],
            }
        }
    )


class ExperimentHoldoutFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "holdouts.ExperimentHoldout"

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"Holdout {n}")
    filters = factory.LazyFunction(
        lambda: [{"properties": [], "rollout_percentage": 10, "variant": "holdout"}]
    )


class ExperimentFactory(factory.django.DjangoModelFactory):
    """A draft experiment on its own inactive flag. Pass start_date/end_date for other states."""

    class Meta:
        model = "experiments.Experiment"

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"Experiment {n}")
    description = ""
    feature_flag = factory.SubFactory(
        FeatureFlagFactory, project=factory.SelfAttribute("..project"), active=False
    )
    stats_config = factory.LazyFunction(lambda: {"method": "bayesian"})
    exposure_criteria = factory.LazyFunction(lambda: {"filterTestAccounts": True})


class ExperimentSavedMetricFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "experiments.ExperimentSavedMetric"

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"Saved metric {n}")
    query = factory.Sequence(
        lambda n: {
            "kind": "ExperimentMetric",
            "metric_type": "mean",
            "uuid": f"00000000-0000-4000-8000-{n:012d}",
            "source": {"kind": "EventsNode", "event": "$pageview"},
        }
    )


class GroupTypeMappingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "events.GroupTypeMapping"

    project = factory.SubFactory(ProjectFactory)
    group_type = "company"
    group_type_index = 0
