from django.core.management.base import BaseCommand

from approvals.services import change_requests_expire


class Command(BaseCommand):
    help = "Mark every pending or approved change request whose expiry has passed as expired (idempotent)."

    def handle(self, *args, **options) -> None:
        expired = change_requests_expire()
        self.stdout.write(f"Expired {expired} change request(s).")
