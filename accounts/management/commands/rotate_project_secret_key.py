"""Operator command: give a project a new secret API key (`phs_…`) and print it.

SDKs use the secret key to fetch flag definitions for local evaluation. The raw key is printed alone
on the last line of stdout so scripts can take it with `tail -n 1`; only its digest is stored.
"""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Project
from accounts.services import project_secret_api_key_revoke_backup, project_secret_api_key_rotate


class Command(BaseCommand):
    help = "Rotate a project's secret API key and print the new one. The previous key stays valid as backup."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project-id", type=int, required=True)
        parser.add_argument(
            "--revoke-previous",
            action="store_true",
            help="Stop accepting the previous secret key at once instead of keeping it as the backup.",
        )

    def handle(self, *args, **options) -> None:
        project = Project.objects.filter(pk=options["project_id"]).first()
        if project is None:
            raise CommandError(f"No project with id {options['project_id']}.")
        issued = project_secret_api_key_rotate(project=project)
        if options["revoke_previous"]:
            project_secret_api_key_revoke_backup(project=project)
        previous = "revoked" if options["revoke_previous"] else "still accepted until revoked"
        self.stdout.write(
            f"New secret API key for project '{project.name}' (id {project.id}); previous key {previous}:"
        )
        self.stdout.write(issued.secret)
