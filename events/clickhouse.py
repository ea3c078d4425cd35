"""The ClickHouse event store: its connection, its schema, and the two clients that run the same SQL.

`CLICKHOUSE_URL` names the store. `http(s)://user:password@host:8123/database` is a ClickHouse
server reached through clickhouse-connect; `chdb:///path/to/dir` (or `chdb://` for a temporary
directory) is chDB, ClickHouse's engine running inside this process, which the tests and the
benchmark use. Both clients take the same SQL text with `{name:Type}` placeholders and the same
parameter values, so what is tested on chDB is what a server runs.

Parameter values are limited to str, int, float and list[str]; instants travel as text
(`'YYYY-MM-DD hh:mm:ss.ffffff'`, UTC) into `DateTime64(6, 'UTC')` placeholders.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

EVENTS_TABLE = "events"
EVENT_COLUMNS = ("project_id", "uuid", "event", "distinct_id", "timestamp", "seq", "properties")

# Each entry runs once, in order; `schema_migrations` records how far a store is. Append, never edit.
SCHEMA_MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "0001_events",
        # ReplacingMergeTree keeps one row per sorting key, so the key ends with the event's uuid and
        # not its timestamp: an SDK retry of an event already drained has a re-corrected timestamp,
        # and must still collapse into the stored row. Queries read with FINAL, so a duplicate that
        # is not merged yet is never counted. The dedup window makes a re-sent drain batch (same
        # token) a no-op before it even reaches a merge.
        f"CREATE TABLE IF NOT EXISTS {EVENTS_TABLE} ("
        " project_id Int64,"
        " uuid UUID,"
        " event String,"
        " distinct_id String,"
        " timestamp DateTime64(6, 'UTC'),"
        " seq UInt64,"
        " properties String CODEC(ZSTD(3)),"
        " inserted_at DateTime64(6, 'UTC') DEFAULT now64(6)"
        ") ENGINE = ReplacingMergeTree"
        " PARTITION BY toYYYYMM(timestamp)"
        " ORDER BY (project_id, event, distinct_id, uuid)"
        " SETTINGS non_replicated_deduplication_window = 1000",
    ),
)


class ClickHouseUnavailable(RuntimeError):
    """The store could not be reached or refused a statement; nothing was written."""


class ClickHouseTimeout(ClickHouseUnavailable):
    """A query ran longer than its `max_execution_time`."""


TIMEOUT_ERROR_CODES = ("Code: 159.", "TIMEOUT_EXCEEDED")


@dataclass(frozen=True)
class EventRow:
    project_id: int
    uuid: str
    event: str
    distinct_id: str
    timestamp: dt.datetime
    seq: int
    properties: str


class ClickHouseClient(Protocol):
    def query(self, sql: str, params: dict[str, Any], settings: dict[str, Any] | None = None) -> list[tuple]:
        """Rows of a SELECT, as tuples of Python values (numbers, str, date)."""
        ...

    def command(self, sql: str, params: dict[str, Any] | None = None) -> None: ...

    def insert_events(self, rows: Sequence[EventRow], deduplication_token: str) -> None:
        """Insert into the events table; a second insert with the same token is skipped."""
        ...


def instant_text(moment: dt.datetime) -> str:
    """An aware datetime as a `DateTime64(6, 'UTC')` parameter value."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def escaped_text(value: str) -> str:
    """A top-level text parameter in ClickHouse's escaped format (as the HTTP interface takes it)."""
    return (
        value.replace("\\", "\\\\")
        .replace("\t", "\\t")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\0", "\\0")
    )


def quoted_text(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\0", "\\0")
    return f"'{escaped}'"


def parameter_text(value: Any) -> str:
    if isinstance(value, bool):
        raise TypeError("booleans are not ClickHouse parameters here; send 0/1")
    if isinstance(value, str):
        return escaped_text(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(quoted_text(str(item)) for item in value) + "]"
    raise TypeError(f"unsupported ClickHouse parameter type {type(value).__name__}")


def event_rows_json(rows: Sequence[EventRow]) -> str:
    return "\n".join(
        json.dumps(
            {
                "project_id": row.project_id,
                "uuid": row.uuid,
                "event": row.event,
                "distinct_id": row.distinct_id,
                "timestamp": instant_text(row.timestamp),
                "seq": row.seq,
                "properties": row.properties,
            },
            ensure_ascii=False,
        )
        for row in rows
    )


def decode_value(value: Any, type_name: str) -> Any:
    if value is None:
        return None
    base = (
        type_name.removeprefix("Nullable(").removesuffix(")")
        if type_name.startswith("Nullable(")
        else type_name
    )
    if base.startswith(("UInt", "Int")):
        return int(value)
    if base.startswith("Float"):
        return float(value)
    if base == "Date":
        return dt.date.fromisoformat(value)
    return value


class ChdbClient:
    """chDB in this process. One session per process (chDB allows one), used under a lock."""

    def __init__(self, path: str) -> None:
        from chdb import session

        self.path = path
        self._session = session.Session(path)
        self._lock = threading.Lock()

    def _run(self, sql: str, params: dict[str, Any] | None, fmt: str) -> str:
        text_params = {name: parameter_text(value) for name, value in (params or {}).items()}
        try:
            with self._lock:
                result = self._session.query(sql, fmt, params=text_params or None)
        except Exception as error:  # chDB raises its own error types for every server-side failure
            message = str(error)
            if any(code in message for code in TIMEOUT_ERROR_CODES):
                raise ClickHouseTimeout(message) from error
            raise ClickHouseUnavailable(message) from error
        return result.bytes().decode() if result is not None else ""

    def query(self, sql: str, params: dict[str, Any], settings: dict[str, Any] | None = None) -> list[tuple]:
        if settings:
            sql = f"{sql} SETTINGS " + ", ".join(f"{name} = {int(value)}" for name, value in settings.items())
        body = self._run(sql, params, "JSONCompact")
        if not body.strip():
            return []
        decoded = json.loads(body)
        types = [column["type"] for column in decoded["meta"]]
        return [
            tuple(decode_value(value, type_name) for value, type_name in zip(row, types, strict=True))
            for row in decoded["data"]
        ]

    def command(self, sql: str, params: dict[str, Any] | None = None) -> None:
        self._run(sql, params, "CSV")

    def insert_events(self, rows: Sequence[EventRow], deduplication_token: str) -> None:
        if not rows:
            return
        self._run(
            f"INSERT INTO {EVENTS_TABLE} ({', '.join(EVENT_COLUMNS)})"
            f" SETTINGS insert_deduplication_token = {quoted_text(deduplication_token)}"
            f" FORMAT JSONEachRow\n{event_rows_json(rows)}",
            None,
            "CSV",
        )


class ServerClient:
    """A ClickHouse server over HTTP(S) through clickhouse-connect. It connects on first use, so a
    server that is down when this process starts is reached once it is back."""

    def __init__(self, url: str) -> None:
        self._url = urlsplit(url)
        self._client = None
        self._lock = threading.Lock()

    def _connected(self):
        import clickhouse_connect

        with self._lock:
            if self._client is None:
                parts = self._url
                self._client = clickhouse_connect.get_client(
                    host=parts.hostname or "localhost",
                    port=parts.port or (8443 if parts.scheme == "https" else 8123),
                    username=unquote(parts.username or "default"),
                    password=unquote(parts.password or ""),
                    database=parts.path.strip("/") or "default",
                    secure=parts.scheme == "https",
                    connect_timeout=5,
                    send_receive_timeout=max(settings.RESULTS_QUERY_TIMEOUT_SECONDS, 30) + 30,
                    autogenerate_session_id=False,
                )
            return self._client

    def _guarded(self, method: str, *args, **kwargs):
        from clickhouse_connect.driver.exceptions import ClickHouseError

        try:
            return getattr(self._connected(), method)(*args, **kwargs)
        except ClickHouseError as error:
            message = str(error)
            if any(code in message for code in TIMEOUT_ERROR_CODES):
                raise ClickHouseTimeout(message) from error
            raise ClickHouseUnavailable(message) from error

    def query(self, sql: str, params: dict[str, Any], settings: dict[str, Any] | None = None) -> list[tuple]:
        result = self._guarded("query", sql, parameters=params, settings=settings or None)
        return [tuple(row) for row in result.result_rows]

    def command(self, sql: str, params: dict[str, Any] | None = None) -> None:
        self._guarded("command", sql, parameters=params or None)

    def insert_events(self, rows: Sequence[EventRow], deduplication_token: str) -> None:
        if not rows:
            return
        data = [
            [row.project_id, row.uuid, row.event, row.distinct_id, row.timestamp, row.seq, row.properties]
            for row in rows
        ]
        self._guarded(
            "insert",
            EVENTS_TABLE,
            data,
            column_names=list(EVENT_COLUMNS),
            settings={"insert_deduplication_token": deduplication_token},
        )


_clients: dict[str, ClickHouseClient] = {}
_clients_lock = threading.Lock()


def clickhouse_client(url: str | None = None) -> ClickHouseClient:
    """The client for `url` (default: `CLICKHOUSE_URL`), made once per process."""
    url = url if url is not None else settings.CLICKHOUSE_URL
    if not url:
        raise ImproperlyConfigured("EVENTS_BACKEND=clickhouse needs CLICKHOUSE_URL.")
    with _clients_lock:
        if url not in _clients:
            _clients[url] = make_client(url)
        return _clients[url]


def make_client(url: str) -> ClickHouseClient:
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme == "chdb":
        # chdb:///absolute/dir, chdb://relative/dir, or chdb:// for a fresh temporary directory.
        path = parts.netloc + parts.path or tempfile.mkdtemp(prefix="experiments-api-chdb-")
        return ChdbClient(path)
    if scheme in ("http", "https"):
        return ServerClient(url)
    raise ImproperlyConfigured(
        f"CLICKHOUSE_URL must start with http://, https:// or chdb://, got {scheme!r}."
    )


def schema_migrate(client: ClickHouseClient) -> list[str]:
    """Apply the schema migrations the store has not had yet; returns their names."""
    client.command(
        "CREATE TABLE IF NOT EXISTS schema_migrations (name String, applied_at DateTime64(6, 'UTC')"
        " DEFAULT now64(6)) ENGINE = MergeTree ORDER BY name"
    )
    done = {row[0] for row in client.query("SELECT name FROM schema_migrations", {})}
    applied = []
    for name, statement in SCHEMA_MIGRATIONS:
        if name in done:
            continue
        client.command(statement)
        client.command("INSERT INTO schema_migrations (name) VALUES ({name:String})", {"name": name})
        applied.append(name)
    return applied
