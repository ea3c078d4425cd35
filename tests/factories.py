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


class FeatureFlagFactory(factory.django.DjangoModelFactory):
    """A 50/50 control/test flag rolled out to everyone, active. Override `filters` for other shapes."""

    class Meta:
        model = "flags.FeatureFlag"

    project = factory.SubFactory(ProjectFactory)
    key = factory.Sequence(lambda n: f"flag-{n}")
    name = factory.LazyAttribute(lambda flag: f"Flag {flag.key}")
    active = True
    version = 1
    filters = factory.LazyFunction(
        lambda: {
            "groups": [{"properties": [], "rollout_percentage": 100}],
            "multivariate": {
                "variants": [
                    {"key": "control", "name": "Control", "rollout_percentage": 50},
                    {"key": "test", "name": "Test", "rollout_percentage": 50},
                ]
            },
            "aggregation_group_type_index": None,
            "payloads": {},
        }
    )


class CohortFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "flags.Cohort"

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"Cohort {n}")
    filters = factory.LazyFunction(lambda: {"properties": {"type": "OR", "values": []}})


class GroupTypeMappingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "events.GroupTypeMapping"

    project = factory.SubFactory(ProjectFactory)
    group_type = "company"
    group_type_index = 0
