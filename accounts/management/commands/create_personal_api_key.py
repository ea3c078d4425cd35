"""Operator command: provision a user, organization and project, and print a new personal API key.

The raw key is printed alone on the last line of stdout so scripts can take it with `tail -n 1`.
"""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.scopes import is_valid_scope
from accounts.services import LEVELS_BY_NAME, access_provision


def parse_scopes(raw: str) -> list[str]:
    scopes = [item.strip() for item in raw.split(",") if item.strip()]
    if not scopes:
        raise CommandError("--scopes must name at least one scope, or '*'.")
    invalid = [scope for scope in scopes if not is_valid_scope(scope)]
    if invalid:
        raise CommandError(f"Invalid scope: {invalid[0]}")
    return scopes


class Command(BaseCommand):
    help = "Create a personal API key, creating the user, organization and project when missing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--email", required=True, help="The key owner's email; the user is created if new."
        )
        parser.add_argument(
            "--scopes", default="*", help="'*' or a comma-separated list like experiment:read"
        )
        parser.add_argument("--label", default="CLI key", help="The key's label (at most 40 characters).")
        parser.add_argument("--project-name", default="Default project")
        parser.add_argument("--organization-name", default="Default organization")
        parser.add_argument(
            "--level",
            choices=sorted(LEVELS_BY_NAME),
            default=None,
            help="Membership level; default owner when the organization is created, member otherwise.",
        )
        parser.add_argument(
            "--replace",
            action="store_true",
            help="Delete the user's existing keys with the same label first.",
        )

    def handle(self, *args, **options) -> None:
        label = options["label"].strip()
        if not label or len(label) > 40:
            raise CommandError("--label must be 1 to 40 characters.")
        provisioned = access_provision(
            email=options["email"],
            scopes=parse_scopes(options["scopes"]),
            label=label,
            organization_name=options["organization_name"],
            project_name=options["project_name"],
            level=options["level"],
            replace_label=options["replace"],
        )
        project = provisioned.project
        self.stdout.write(
            f"User {provisioned.user.email} ({'created' if provisioned.created_user else 'existing'}), "
            f"organization '{provisioned.organization.name}' "
            f"({'created' if provisioned.created_organization else 'existing'}), "
            f"project '{project.name}' id {project.id} "
            f"({'created' if provisioned.created_project else 'existing'}); "
            f"key '{label}' with scopes {','.join(provisioned.issued.key.scopes)}:"
        )
        self.stdout.write(provisioned.issued.secret)
