FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

COPY pyproject.toml README.md ./
COPY experiments_api ./experiments_api
COPY accounts ./accounts
COPY activity ./activity
COPY flags ./flags
COPY holdouts ./holdouts
COPY experiments ./experiments
COPY approvals ./approvals
COPY events ./events
COPY results ./results
COPY manage.py gunicorn.conf.py ./

RUN pip install . \
    && SECRET_KEY=build-only DEBUG=false python manage.py collectstatic --noinput --verbosity 0 \
    && useradd --system --uid 10001 app

USER app
EXPOSE 8000

CMD ["sh", "-c", "python manage.py migrate --noinput && exec gunicorn experiments_api.wsgi:application -c gunicorn.conf.py"]
