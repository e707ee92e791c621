"""One database URL -> a peewee database: ``sqlite:///path`` (default) or ``postgresql://...``.

SQLite runs in WAL mode with ``synchronous=FULL``: the commit that marks a call ``dialing``
before its originate is sent must survive a power cut (docs/design.md, "Reliability"); a busy
timeout lets a second process (the CLI) wait for the server's write. PostgreSQL under gevent needs
psycogreen, or every query blocks the whole hub (docs/design.md, "Facts measured here").
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import peewee
import psycopg2
import psycopg2.extensions
from playhouse.pool import PooledPostgresqlDatabase, PooledSqliteDatabase

from robocall.errors import ConfigError

SQLITE_PRAGMAS = (
    ("journal_mode", "wal"),
    ("synchronous", "full"),
    ("busy_timeout", 5000),
    ("foreign_keys", 1),
)
POOL_SIZE = 32
# A greenlet finding every pooled connection in use waits this long for one instead of failing
# at once: a burst of calls (each recording its progress) must queue, not kill call runners.
POOL_WAIT_SECONDS = 30
POOL_STALE_SECONDS = 300
# A greenlet finding every pooled connection taken waits this long for one: hundreds of live
# calls write at once at load, and a pool that refused at once (peewee's default) left a call
# whose final write it refused `dialing` for ever.
POOL_WAIT_SECONDS = 30


# A pooled PostgreSQL connection back in the pool for less than this is handed out again
# without the pool's liveness ping (a `SELECT 1` round trip at every checkout, which at load
# was one round trip in four of robocall's whole store traffic); one idle longer is pinged.
PING_AFTER_IDLE_SECONDS = 1.0


class _LazyBeginConnection(psycopg2.extensions.connection):  # type: ignore[misc]
    """A connection whose transaction's ``BEGIN`` waits for the transaction's first statement
    and goes in its round trip (``_PooledPostgresql.begin``)."""

    pending_begin: str | None = None
    # COMMIT went with the transaction's last statement (``_PooledPostgresql.commit_with``).
    committed = False


class _LazyBeginCursor(psycopg2.extensions.cursor):  # type: ignore[misc]
    """Sends its connection's pending ``BEGIN`` ahead of the first statement, in one message:
    PostgreSQL runs both, and the transaction stays open after it as if begun on its own.
    Every way a statement leaves goes through here, so none can run outside its transaction."""

    def _take_begin(self) -> str | None:
        begin: str | None = self.connection.pending_begin
        self.connection.pending_begin = None
        return begin

    def execute(self, query: Any, vars: Any = None) -> Any:  # noqa: A002 (psycopg2's name)
        if self.connection.committed:
            # It would run on its own, outside the transaction it was written for.
            raise psycopg2.InterfaceError("the transaction was committed with its last statement")
        begin = self._take_begin()
        if begin is not None:
            if isinstance(query, str):
                query = f"{begin}; {query}"
            else:  # bytes or a composed query: its own round trip, as before
                super().execute(begin)
        return super().execute(query, vars)

    def executemany(self, query: Any, vars_list: Any) -> Any:
        begin = self._take_begin()
        if begin is not None:
            super().execute(begin)
        return super().executemany(query, vars_list)


class _PooledPostgresql(PooledPostgresqlDatabase):  # type: ignore[misc]
    """peewee's pool, pinging a connection only when it sat idle (PING_AFTER_IDLE_SECONDS),
    and sending a transaction's ``BEGIN`` with its first statement (a round trip fewer for
    every transaction: on a machine whose cores are busy each round trip costs a wake-up of
    PostgreSQL's backend and of robocall, ~10 ms on the lab at load).

    A connection the server dropped within that second fails its next statement once; the
    pool then discards it (its transaction state is unknown), as it would any broken one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._returned_at: dict[int, float] = {}
        kwargs.setdefault("connection_factory", _LazyBeginConnection)
        kwargs.setdefault("cursor_factory", _LazyBeginCursor)
        super().__init__(*args, **kwargs)

    def begin(self, isolation_level: Any = None) -> None:
        # Nothing is sent yet: the connection's cursor sends it with the transaction's first
        # statement (_LazyBeginCursor). An isolation level other than the server's is rare.
        if isolation_level is None and not self._isolation_level:
            self.connection().pending_begin = "BEGIN"
        else:
            super().begin(isolation_level)

    def commit(self) -> None:
        connection = self.connection()
        if connection.pending_begin is not None or connection.committed:
            # No statement was sent (nothing began on the server), or COMMIT went already.
            connection.pending_begin, connection.committed = None, False
            return
        super().commit()

    def rollback(self) -> None:
        connection = self.connection()
        connection.committed = False
        if connection.pending_begin is not None:
            connection.pending_begin = None  # nothing began on the server
            return
        super().rollback()

    def commit_with(self, sql: str, params: Sequence[Any]) -> None:
        """Run ``sql``, the last statement of the transaction (no savepoint open), and its
        COMMIT in one round trip; the transaction block's own commit then sends nothing.
        Whatever raises after this cannot undo it: call it last."""
        if self.transaction_depth() != 1:
            raise peewee.InterfaceError("commit_with: not in one top-level transaction")
        self.execute_sql(f"{sql}; COMMIT", params)
        self.connection().committed = True

    def _is_closed(self, conn: Any) -> bool:
        returned = self._returned_at.get(id(conn))
        if (
            returned is not None
            and time.monotonic() - returned < PING_AFTER_IDLE_SECONDS
            and not conn.closed
            and conn.info.transaction_status == 0  # TRANSACTION_STATUS_IDLE, a local flag
        ):
            return False
        return bool(super()._is_closed(conn))

    def _close(self, conn: Any, close_conn: bool = False) -> None:
        # Back in the pool with no transaction of its own to begin or to have committed.
        conn.pending_begin, conn.committed = None, False
        super()._close(conn, close_conn)
        if close_conn or conn.closed:
            self._returned_at.pop(id(conn), None)
        else:
            self._returned_at[id(conn)] = time.monotonic()

    def _close_raw(self, conn: Any) -> None:
        self._returned_at.pop(id(conn), None)
        super()._close_raw(conn)


def open_database(url: str) -> peewee.Database:
    """A pooled peewee database for ``url`` (nothing is connected until first use)."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:///relative/path and sqlite:////absolute/path, as SQLAlchemy and peewee read them
        path = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
        if not path:
            raise ConfigError(f"{url}: a SQLite URL needs a file path (sqlite:///robocall.db)")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        sqlite: peewee.Database = PooledSqliteDatabase(
            path,
            pragmas=SQLITE_PRAGMAS,
            max_connections=POOL_SIZE,
            stale_timeout=POOL_STALE_SECONDS,
            timeout=POOL_WAIT_SECONDS,
            check_same_thread=False,
        )
        return sqlite
    if parts.scheme in ("postgresql", "postgres"):
        _make_psycopg_cooperative()
        name = unquote(parts.path.lstrip("/"))
        if not name:
            raise ConfigError(f"{url}: a PostgreSQL URL needs a database name")
        postgresql: peewee.Database = _PooledPostgresql(
            name,
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            user=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            max_connections=POOL_SIZE,
            stale_timeout=POOL_STALE_SECONDS,
            timeout=POOL_WAIT_SECONDS,
        )
        return postgresql
    raise ConfigError(f"{url}: the database URL must start with sqlite:// or postgresql://")


def is_postgresql(database: peewee.Database) -> bool:
    """Whether ``database`` is PostgreSQL (else SQLite)."""
    return isinstance(database, peewee.PostgresqlDatabase)


def _make_psycopg_cooperative() -> None:
    # psycogreen installs a wait callback so psycopg2 waits on the gevent hub, not the OS
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()
