"""Used by `make run`: make sure the demo account exists and print a fresh all-scopes key and a curl line."""

from django.core.management.base import BaseCommand, CommandParser

from accounts.services import access_provision

DEMO_EMAIL = "demo@example.com"
DEMO_LABEL = "make run"


class Command(BaseCommand):
    help = "Ensure the demo organization, project and user exist; print a new all-scopes key and a curl line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    def handle(self, *args, **options) -> None:
        provisioned = access_provision(
            email=DEMO_EMAIL,
            scopes=["*"],
            label=DEMO_LABEL,
            organization_name="Demo organization",
            project_name="Demo project",
            level="owner",
            replace_label=True,
        )
        base_url = options["base_url"].rstrip("/")
        secret = provisioned.issued.secret
        project_id = provisioned.project.id
        self.stdout.write("")
        self.stdout.write(f"Demo user:        {DEMO_EMAIL}")
        self.stdout.write(f"Demo project id:  {project_id}")
        self.stdout.write(f"Personal API key: {secret}   (all scopes; replaced on every `make run`)")
        self.stdout.write("Try it:")
        self.stdout.write(f'  curl -H "Authorization: Bearer {secret}" {base_url}/api/projects/{project_id}/')
        self.stdout.write(f"API docs: {base_url}/api/schema/swagger-ui/")
        self.stdout.write("")
