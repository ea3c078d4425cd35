import os

from django.core.asgi import get_asgi_application

from experiments_api.secret_key import require_usable_secret_key

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "experiments_api.settings")

require_usable_secret_key()

application = get_asgi_application()
