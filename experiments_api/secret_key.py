"""The refusal of a missing or published SECRET_KEY outside DEBUG (see settings.py).

Settings load without a usable secret so that commands that only read code work anywhere; everything
that would serve requests or use the secret refuses here instead: the WSGI and ASGI applications at
start, `manage.py check --deploy`, and the digest of personal API keys.
"""

from django.conf import settings
from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured

SECRET_KEY_REFUSED = (
    "Set SECRET_KEY to a long random value of your own (e.g. `python -c 'import secrets; "
    "print(secrets.token_urlsafe(50))'`): with DEBUG off a missing or published secret is refused."
)


def require_usable_secret_key() -> None:
    """Raise ImproperlyConfigured unless DEBUG is on or SECRET_KEY is a secret of the operator's own."""
    if not settings.SECRET_KEY_IS_USABLE:
        raise ImproperlyConfigured(SECRET_KEY_REFUSED)


@register(deploy=True)
def secret_key_check(app_configs, **kwargs) -> list[Error]:
    if settings.SECRET_KEY_IS_USABLE:
        return []
    return [Error(SECRET_KEY_REFUSED, id="experiments_api.E001")]
