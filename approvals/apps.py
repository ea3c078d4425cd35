from typing import Any

from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts.versions import watch_project_data
        from approvals.models import Approval, ApprovalPolicy, ChangeRequest

        def vote_project(vote: Any) -> int | None:
            """The project of an approval vote: its change request's."""
            return (
                ChangeRequest.objects.filter(pk=vote.change_request_id)
                .values_list("project_id", flat=True)
                .first()
            )

        watch_project_data(ApprovalPolicy, moves_flag_definitions=False)
        watch_project_data(ChangeRequest, moves_flag_definitions=False)
        watch_project_data(Approval, moves_flag_definitions=False, project_of=vote_project)
