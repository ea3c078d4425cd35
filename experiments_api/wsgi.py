import os

from django.core.wsgi import get_wsgi_application

from experiments_api.secret_key import require_usable_secret_key

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "experiments_api.settings")

require_usable_secret_key()

application = get_wsgi_application()
