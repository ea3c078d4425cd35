from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.http import HttpRequest

from accounts.models import Organization, OrganizationMembership, PersonalAPIKey, Project, User
from accounts.scopes import is_valid_scope
from accounts.services import (
    personal_api_key_digest,
    personal_api_key_generate_secret,
    personal_api_key_mask,
    personal_api_key_roll,
    project_secret_api_key_revoke_backup,
    project_secret_api_key_rotate,
)
from experiments_api.admin import ModelAdmin


class MembershipInline(admin.TabularInline):
    model = OrganizationMembership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(ModelAdmin):
    list_display = ["name", "id", "created_at"]
    search_fields = ["name", "id"]
    inlines = [MembershipInline]


@admin.register(Project)
class ProjectAdmin(ModelAdmin):
    list_display = ["name", "id", "organization", "created_at"]
    list_filter = ["organization"]
    search_fields = ["name", "id", "api_token"]
    readonly_fields = [
        "api_token",
        "secret_api_token_mask",
        "has_backup_secret_api_token",
        "secret_api_token_rotated_at",
        "created_at",
        "updated_at",
    ]
    actions = ["rotate_secret_api_keys", "revoke_backup_secret_api_keys"]

    @admin.display(boolean=True, description="Previous secret key still accepted")
    def has_backup_secret_api_token(self, obj: Project) -> bool:
        return bool(obj.secret_api_token_backup_digest)

    @admin.action(description="Rotate project secret API keys (shows the new secrets once)")
    def rotate_secret_api_keys(self, request: HttpRequest, queryset) -> None:
        for project in queryset:
            issued = project_secret_api_key_rotate(project=project)
            messages.warning(
                request,
                f"New secret API key for '{project.name}' (shown only this once, copy it now; the previous "
                f"one keeps working until revoked): {issued.secret}",
            )

    @admin.action(description="Revoke the previous project secret API keys")
    def revoke_backup_secret_api_keys(self, request: HttpRequest, queryset) -> None:
        for project in queryset:
            project_secret_api_key_revoke_backup(project=project)
        messages.success(request, f"Previous secret API keys revoked for {queryset.count()} project(s).")


admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(DjangoGroupAdmin, ModelAdmin):
    """Django's groups, with their actions' selections checked as every admin's are."""


@admin.register(User)
class UserAdmin(DjangoUserAdmin, ModelAdmin):
    ordering = ["email"]
    list_display = ["email", "first_name", "last_name", "is_active", "is_staff", "date_joined"]
    list_filter = ["is_active", "is_staff", "is_superuser"]
    search_fields = ["email", "first_name", "last_name", "distinct_id"]
    readonly_fields = ["uuid", "distinct_id", "date_joined", "last_login"]
    fieldsets = (
        (None, {"fields": ("email", "password", "uuid", "distinct_id")}),
        ("Personal info", {"fields": ("first_name", "last_name", "current_project")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)
    inlines = [MembershipInline]


@admin.register(OrganizationMembership)
class OrganizationMembershipAdmin(ModelAdmin):
    list_display = ["user", "organization", "level", "joined_at"]
    list_filter = ["level", "organization"]
    search_fields = ["user__email", "organization__name"]
    autocomplete_fields = ["user", "organization"]


class ScopesField(forms.CharField):
    """Scopes typed as a comma-separated list (`*` or `experiment:read,experiment:write`)."""

    def prepare_value(self, value):
        if isinstance(value, list):
            return ",".join(value)
        return value

    def to_python(self, value):
        text = super().to_python(value) or ""
        scopes = [item.strip() for item in text.split(",") if item.strip()]
        invalid = [scope for scope in scopes if not is_valid_scope(scope)]
        if invalid:
            raise forms.ValidationError(f"Invalid scope: {invalid[0]}")
        if not scopes:
            raise forms.ValidationError("Give at least one scope, or * for all.")
        return scopes


class PersonalAPIKeyForm(forms.ModelForm):
    scopes = ScopesField(help_text="Comma-separated, e.g. experiment:read,experiment:write, or * for all.")

    class Meta:
        model = PersonalAPIKey
        fields = ["user", "label", "scopes", "scoped_teams", "scoped_organizations"]


@admin.register(PersonalAPIKey)
class PersonalAPIKeyAdmin(ModelAdmin):
    form = PersonalAPIKeyForm
    list_display = ["label", "user", "mask_value", "created_at", "last_used_at"]
    list_filter = ["created_at", "last_used_at"]
    search_fields = ["label", "user__email", "mask_value"]
    readonly_fields = ["mask_value", "created_at", "last_used_at", "last_rolled_at"]
    autocomplete_fields = ["user"]
    actions = ["roll_keys"]

    def save_model(self, request: HttpRequest, obj: PersonalAPIKey, form, change: bool) -> None:
        if not change:
            secret = personal_api_key_generate_secret()
            obj.secure_value = personal_api_key_digest(secret)
            obj.mask_value = personal_api_key_mask(secret)
            super().save_model(request, obj, form, change)
            messages.warning(request, f"New personal API key (shown only this once, copy it now): {secret}")
            return
        super().save_model(request, obj, form, change)

    @admin.action(description="Roll selected keys (shows the new secrets once)")
    def roll_keys(self, request: HttpRequest, queryset) -> None:
        for key in queryset:
            issued = personal_api_key_roll(key=key)
            messages.warning(request, f"New secret for '{key.label}' ({key.user}): {issued.secret}")
