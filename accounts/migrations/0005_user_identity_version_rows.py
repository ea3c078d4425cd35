from django.db import migrations


def create_identity_rows(apps, schema_editor):
    """Every existing user gets the row new users get when they are created."""
    user_model = apps.get_model("accounts", "User")
    identity_version = apps.get_model("accounts", "UserIdentityVersion")
    identity_version.objects.bulk_create(
        [identity_version(user_id=user_id) for user_id in user_model.objects.values_list("id", flat=True)],
        ignore_conflicts=True,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_user_identity_version"),
    ]

    operations = [
        migrations.RunPython(create_identity_rows, migrations.RunPython.noop),
    ]
