"""Logging that is safe to keep and always lands somewhere.

- Records about a request carry its request id.
- Credentials sent in query strings (`?personal_api_key=phx_…`, `token`, `api_key`, `secret`) and
  any personal API key secret are replaced with `[REDACTED]` in access and error logs.
- Under gunicorn, the application's log records go to gunicorn's error log (a file, syslog, or
  stderr, whatever the operator configured), so a 500's traceback is never lost to a detached
  stderr (`--daemon`). Outside gunicorn they go to stderr.

No Django import: gunicorn's master process loads this module through gunicorn.conf.py.
"""

import logging
import re
import sys

from gunicorn.glogging import Logger as GunicornLogger

REDACTED = "[REDACTED]"
CREDENTIAL_PARAMETERS = ("personal_api_key", "token", "api_key", "secret")
# A parameter name may be percent-encoded (`personal%5Fapi%5Fkey`) and carry a prefix (`$token`,
# `project_api_key`): any name ending in one of the credential words is redacted.
_PARAMETER_NAME = (
    r"[^\s&;=?#\"']*?(?:"
    + "|".join(name.replace("_", r"(?:_|%5[Ff])") for name in CREDENTIAL_PARAMETERS)
    + ")"
)
QUERY_CREDENTIAL = re.compile(r"(?i)((?:^|[?&;\s])" + _PARAMETER_NAME + r"=)[^&;\s\"'#]*")
PERSONAL_API_KEY_SECRET = re.compile(r"phx_[A-Za-z0-9]{8,}")


def redact_credentials(text: str) -> str:
    """`text` with every query-string credential value and personal API key secret replaced."""
    text = QUERY_CREDENTIAL.sub(lambda match: match.group(1) + REDACTED, text)
    return PERSONAL_API_KEY_SECRET.sub("phx_" + REDACTED, text)


class RedactCredentialsFilter(logging.Filter):
    """Redacts a record's final message and traceback text before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_credentials(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_credentials(record.exc_text)
        return True


class RequestIdFilter(logging.Filter):
    """Adds the request id to records Django logs about a request (`Internal Server Error: /path`
    with its traceback), so an error log line can be matched with the response's X-Request-ID."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = getattr(getattr(record, "request", None), "request_id", None)
        if request_id:
            message = record.getMessage()
            if "request_id=" not in message:
                record.msg, record.args = f"{message} (request_id={request_id})", None
        return True


class ErrorLogHandler(logging.Handler):
    """Hands records to gunicorn's error log handlers when gunicorn configured them in this process,
    else writes them to stderr."""

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.fallback = logging.StreamHandler(sys.stderr)
        self.fallback.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        handlers = logging.getLogger("gunicorn.error").handlers or [self.fallback]
        for handler in handlers:
            if record.levelno >= handler.level:
                handler.handle(record)


class RedactingGunicornLogger(GunicornLogger):
    """gunicorn's logger with credentials redacted from the access log's request line and query
    string, and from every error log message."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            if not any(isinstance(existing, RedactCredentialsFilter) for existing in log.filters):
                log.addFilter(RedactCredentialsFilter())

    def atoms(self, resp, req, environ, request_time) -> dict:
        atoms = super().atoms(resp, req, environ, request_time)
        for name in ("r", "q", "{raw_uri}e", "{query_string}e", "f", "{referer}i"):
            if isinstance(atoms.get(name), str):
                atoms[name] = redact_credentials(atoms[name])
        return atoms
