from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the deploy check that refuses a missing or published SECRET_KEY.
        import experiments_api.secret_key  # noqa: F401
        from accounts.identity_versions import connect_identity_signals
        from accounts.versions import connect_project_data_signals

        connect_project_data_signals()
        connect_identity_signals()
