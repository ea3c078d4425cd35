from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from approvals.models import Approval, ApprovalPolicy, ChangeRequest
from approvals.services import ChangeRequestActionError, change_request_approve, change_request_reject
from experiments_api.admin import ModelAdmin, ServiceWrittenModelAdmin


@admin.register(ApprovalPolicy)
class ApprovalPolicyAdmin(ModelAdmin):
    """Policies, each marked valid or not: a policy naming an action no installed app registers
    gates nothing, and saving one is refused (`ApprovalPolicy.clean`)."""

    list_display = ["action_key", "action_valid", "organization", "project", "enabled", "created_at"]
    list_filter = ["action_key", "enabled", "organization"]
    search_fields = ["action_key"]
    readonly_fields = ["action_valid", "created_by", "created_at", "updated_at"]

    @admin.display(boolean=True, description="Valid action")
    def action_valid(self, policy: ApprovalPolicy) -> bool:
        return policy.action_is_registered


class ApprovalInline(admin.TabularInline):
    model = Approval
    extra = 0
    readonly_fields = ["created_by", "decision", "reason", "created_at"]
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ChangeRequest)
class ChangeRequestAdmin(ServiceWrittenModelAdmin):
    """Change requests are read-only here; approving and rejecting go through the same services
    (and the same approver rules) as the API."""

    list_display = [
        "created_at",
        "action_key",
        "resource_type",
        "resource_id",
        "state",
        "created_by",
        "project",
    ]
    list_filter = ["state", "action_key", "validation_status", "project"]
    search_fields = ["action_key", "resource_id", "created_by__email"]
    inlines = [ApprovalInline]
    actions = ["approve", "reject"]

    @admin.action(description="Approve selected change requests")
    def approve(self, request: HttpRequest, queryset: QuerySet) -> None:
        for change_request in queryset:
            try:
                outcome = change_request_approve(change_request=change_request, user=request.user, reason="")
            except ChangeRequestActionError as error:
                self.message_user(request, f"{change_request.id}: {error}", messages.ERROR)
            else:
                self.message_user(request, f"{change_request.id}: {outcome.message}", messages.INFO)

    @admin.action(description="Reject selected change requests")
    def reject(self, request: HttpRequest, queryset: QuerySet) -> None:
        for change_request in queryset:
            try:
                outcome = change_request_reject(
                    change_request=change_request,
                    user=request.user,
                    reason=f"Rejected in admin by {request.user}",
                )
            except ChangeRequestActionError as error:
                self.message_user(request, f"{change_request.id}: {error}", messages.ERROR)
            else:
                self.message_user(request, f"{change_request.id}: {outcome.message}", messages.INFO)
