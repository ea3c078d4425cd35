"""Production defaults for gunicorn; every value can be overridden by the environment variable named."""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "10000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "1000"))
# gunicorn's control socket is one fixed path per user; several servers on one machine would
# fight over it, and nothing here uses it.
control_socket_disable = os.environ.get("GUNICORN_CONTROL_SOCKET", "") == ""
# The longest request line gunicorn accepts (its maximum); longer ones get its own 414 page.
limit_request_line = int(os.environ.get("GUNICORN_LIMIT_REQUEST_LINE", "8190"))
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR", "/dev/shm" if os.path.isdir("/dev/shm") else None)

# An empty value turns the access log off. Both logs redact query-string credentials; the
# application's own records (500 tracebacks with their request id) go to the error log.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None
errorlog = os.environ.get("GUNICORN_ERROR_LOG", "-")
logger_class = "experiments_api.logs.RedactingGunicornLogger"
# Where the error log goes when gunicorn runs with --daemon and the error log is stderr, which a
# daemon detaches from (/dev/null): without this, tracebacks would go nowhere.
daemon_error_log = os.path.abspath(os.environ.get("GUNICORN_DAEMON_ERROR_LOG", "gunicorn-error.log"))
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# Request id (set by RequestIdMiddleware and echoed in the response) and latency in microseconds.
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(D)sus request_id=%({x-request-id}o)s'


def on_starting(server) -> None:
    """A daemon has no stderr: send an error log that would go there to `daemon_error_log`."""
    if server.cfg.daemon and server.cfg.errorlog == "-" and not server.cfg.enable_stdio_inheritance:
        server.cfg.set("errorlog", daemon_error_log)
        server.log.setup(server.cfg)
        server.log.info("Running as a daemon: the error log is %s", daemon_error_log)


def when_ready(server) -> None:
    """Warn when several workers would each keep their own cache (throttle counters, flag
    definitions): per-key limits then multiply by the worker count. Set REDIS_URL to share it.
    The count is the one gunicorn runs with (a command-line -w included), not this file's default."""
    running_workers = server.cfg.workers
    if running_workers > 1 and not os.environ.get("REDIS_URL"):
        server.log.warning(
            "Running %s workers without REDIS_URL: each worker has its own cache, so per-key rate "
            "limits are per worker. Set REDIS_URL to share the cache between workers and machines.",
            running_workers,
        )
