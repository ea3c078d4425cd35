"""Django's PostgreSQL backend with a health check that costs no round trip.

With `CONN_HEALTH_CHECKS`, Django asks a reused connection `SELECT 1` before the first query of
every request, so a connection the server dropped (a restart, an idle timeout, an administrator's
kill) is replaced before a request fails on it. That round trip is a sizeable share of a fast
request. A server that ends a session writes a last message (or closes the socket), which leaves
the socket readable; an idle healthy connection has nothing to read. So a non-blocking look at the
socket answers the common case, and only a readable socket is checked the slow way.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql.base import DatabaseWrapper as PostgreSQLDatabaseWrapper
from psycopg.pq import TransactionStatus


class DatabaseWrapper(PostgreSQLDatabaseWrapper):
    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        if connection.info.transaction_status != TransactionStatus.IDLE:
            return super().is_usable()
        try:
            readable, _, _ = select.select([connection.fileno()], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable or super().is_usable()
