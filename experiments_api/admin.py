"""Admin conventions shared by every app."""

from django.contrib import admin
from django.http import HttpRequest


class ServiceWrittenModelAdmin(admin.ModelAdmin):
    """For a model whose rows change only through its services (where validation, versioning,
    activity and approvals apply): every field is shown read-only, and rows are neither added nor
    deleted here. Admin actions that call those services may still change them."""

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        # `readonly_fields` names what a subclass adds to the stored fields (computed ones).
        return [*self.readonly_fields, *(field.name for field in self.model._meta.fields)]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
