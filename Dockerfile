FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, from the lock file CI installs too, so this layer is reused until it changes.
COPY requirements/base.lock requirements/base.lock
RUN pip install -r requirements/base.lock

# The whole project; .dockerignore says what stays out, so a new app is never left behind.
COPY . .

# collectstatic needs settings, not a secret: a throwaway one is generated for this step only.
RUN SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
        python manage.py collectstatic --noinput --verbosity 0 \
    && useradd --system --uid 10001 app

USER app
EXPOSE 8000

CMD ["sh", "-c", "python manage.py migrate --noinput && exec gunicorn experiments_api.wsgi:application -c gunicorn.conf.py"]
