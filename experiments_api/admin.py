"""Admin conventions shared by every app."""

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseBase

SELECTION_NOT_IDS = "Nothing was done: the selection names rows by something that is not an id."


class ModelAdmin(admin.ModelAdmin):
    """Every app's admin base: an action's selection (the ids a change list posts) is checked to be
    ids of the model before the action reads the rows, so a forged one is refused with a message
    rather than failing the request when the rows are read."""

    def response_action(self, request: HttpRequest, queryset: QuerySet) -> HttpResponseBase | None:
        try:
            for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
                self.model._meta.pk.to_python(value)
        except ValidationError:
            self.message_user(request, SELECTION_NOT_IDS, messages.ERROR)
            return None
        return super().response_action(request, queryset)


class ServiceWrittenModelAdmin(ModelAdmin):
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
