"""Admin conventions shared by every app."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import QuerySet
from django.forms.fields import InvalidJSONInput
from django.http import HttpRequest, HttpResponseBase

SELECTION_NOT_IDS = "Nothing was done: the selection names rows by something that is not an id."
JSON_TOO_DEEP = "This JSON is nested too deep to be read."


class JSONFormField(forms.JSONField):
    """Django's JSON form field, refusing JSON nested too deep to read (`json.loads` recurses once
    per level and raises RecursionError, which Django's field lets through) as invalid input."""

    def to_python(self, value: Any) -> Any:
        try:
            return super().to_python(value)
        except RecursionError:
            raise ValidationError(JSON_TOO_DEEP, code="invalid") from None

    def bound_data(self, data: Any, initial: Any) -> Any:
        try:
            return super().bound_data(data, initial)
        except RecursionError:
            return InvalidJSONInput(data)


class ModelAdmin(admin.ModelAdmin):
    """Every app's admin base: an action's selection (the ids a change list posts) is checked to be
    ids of the model before the action reads the rows, so a forged one is refused with a message
    rather than failing the request when the rows are read; JSON fields refuse JSON nested too deep
    to read."""

    formfield_overrides = {models.JSONField: {"form_class": JSONFormField}}

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
