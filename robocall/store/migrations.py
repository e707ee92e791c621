"""Schema versions: a ``schema_version`` table and an ordered list of migrations.

Run on start (``robocall serve``) or by ``robocall migrate``. Each migration runs in its own
transaction with its version row, so a failed one leaves the schema at the last good version.
On PostgreSQL an advisory lock keeps two nodes starting at once from migrating twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import peewee

from robocall.errors import StoreError
from robocall.store.db import is_postgresql
from robocall.store.models import Tables, bind_models

MIGRATION_LOCK_KEY = 0x726F626F  # "robo": any constant all robocall nodes share


# Counting 100,000 calls by status on every poll costs tens of milliseconds; a trigger keeps
# request_counts exact whichever module changes a call's status, at one upsert per change.
_SQLITE_COUNT_TRIGGER = """
CREATE TRIGGER calls_status_count AFTER UPDATE OF status ON calls
WHEN OLD.status <> NEW.status
BEGIN
    UPDATE request_counts SET count = count - 1
        WHERE request_seq = OLD.request_seq AND status = OLD.status;
    INSERT INTO request_counts (request_seq, status, count) VALUES (NEW.request_seq, NEW.status, 1)
        ON CONFLICT (request_seq, status) DO UPDATE SET count = count + 1;
END
"""
_POSTGRESQL_COUNT_FUNCTION = """
CREATE FUNCTION calls_status_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE request_counts SET count = count - 1
        WHERE request_seq = OLD.request_seq AND status = OLD.status;
    INSERT INTO request_counts (request_seq, status, count) VALUES (NEW.request_seq, NEW.status, 1)
        ON CONFLICT (request_seq, status) DO UPDATE SET count = request_counts.count + 1;
    RETURN NEW;
END
$$
"""
_POSTGRESQL_COUNT_TRIGGER = """
CREATE TRIGGER calls_status_count AFTER UPDATE OF status ON calls
FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
EXECUTE FUNCTION calls_status_count()
"""


def _v1_initial(database: peewee.Database, tables: Tables) -> None:
    database.create_tables(tables.all(), safe=False)
    if is_postgresql(database):
        database.execute_sql(_POSTGRESQL_COUNT_FUNCTION)
        database.execute_sql(_POSTGRESQL_COUNT_TRIGGER)
    else:
        database.execute_sql(_SQLITE_COUNT_TRIGGER)


# Migration 1 creates the tables from the current models, so on a new database the columns
# below exist already: each is added only where it is missing.
_V2_COLUMNS = (
    ("call_requests", "retry_policy", "TEXT"),
    ("call_requests", "calling_window", "TEXT"),
    ("call_requests", "not_before", "TIMESTAMP"),
    ("call_requests", "not_after", "TIMESTAMP"),
    ("call_requests", "cancelled_at", "TIMESTAMP"),
    ("calls", "next_attempt_at", "TIMESTAMP"),
)


def _v2_retry_window_cancel(database: peewee.Database, tables: Tables) -> None:
    for table, column, kind in _V2_COLUMNS:
        present = {c.name for c in database.get_columns(table)}
        if column not in present:
            if kind == "TIMESTAMP" and not is_postgresql(database):
                kind = "DATETIME"  # what peewee's DateTimeField is on SQLite
            database.execute_sql(f"ALTER TABLE {table} ADD COLUMN {column} {kind} NULL")


def _v3_calls_node(database: peewee.Database, tables: Tables) -> None:
    # v1 creates the tables from the current models, so a database created since has the
    # column already: add it only where it is missing.
    if "node_id" not in {column.name for column in database.get_columns("calls")}:
        database.execute_sql("ALTER TABLE calls ADD COLUMN node_id VARCHAR(64)")


def _v4_webhooks(database: peewee.Database, tables: Tables) -> None:
    from robocall.store.webhooks import bind_webhook_models

    database.create_tables(bind_webhook_models(database).all(), safe=False)


_V5_BATCH = 1000


def _v5_typed_call_reports(database: peewee.Database, tables: Tables) -> None:
    """Until now each call's steps and legs were kept as the client's JSON (``stepName`` and
    ``info``; ``type``); they become the store's own records (``store.call_report``)."""
    from robocall.store.call_report import upgrade_leg_record, upgrade_step_record

    param = database.param
    last = 0
    while True:
        rows = database.execute_sql(
            f"SELECT id, steps, monitor FROM calls WHERE id > {param} "
            "AND (steps <> '[]' OR monitor <> '[]') ORDER BY id LIMIT "
            f"{_V5_BATCH}",
            (last,),
        ).fetchall()
        if not rows:
            return
        changes = []
        for call_id, steps, monitor in rows:
            new_steps = json.dumps([upgrade_step_record(entry) for entry in json.loads(steps)])
            new_monitor = json.dumps([upgrade_leg_record(entry) for entry in json.loads(monitor)])
            if (new_steps, new_monitor) != (steps, monitor):
                changes.append((new_steps, new_monitor, call_id))
        cursor = database.cursor()
        cursor.executemany(
            f"UPDATE calls SET steps = {param}, monitor = {param} WHERE id = {param}", changes
        )
        last = rows[-1][0]


def _v6_node_leases(database: peewee.Database, tables: Tables) -> None:
    from robocall.store.nodes import bind_lease_model

    database.create_tables([bind_lease_model(database)], safe=True)


_V8_COLUMNS = (
    ("call_requests", "machine_detection", "TEXT"),
    ("calls", "answered_by", "VARCHAR(16)"),
    ("calls", "answered_by_ms", "INTEGER"),
)


def _v8_machine_detection(database: peewee.Database, tables: Tables) -> None:
    for table, column, kind in _V8_COLUMNS:
        if column not in {c.name for c in database.get_columns(table)}:
            database.execute_sql(f"ALTER TABLE {table} ADD COLUMN {column} {kind} NULL")


def _v9_calls_switch(database: peewee.Database, tables: Tables) -> None:
    # A database created since has the column from the model: add it only where it is missing.
    if "switch" not in {column.name for column in database.get_columns("calls")}:
        database.execute_sql("ALTER TABLE calls ADD COLUMN switch VARCHAR(64) NULL")


def _v7_operators(database: peewee.Database, tables: Tables) -> None:
    from robocall.store.access import bind_operator_key_model
    from robocall.store.webhooks import scrub_receiver_text

    database.create_tables([bind_operator_key_model(database)], safe=False)
    # Logs written before this version kept an excerpt of the receiver's answer: keep the
    # status code only, so the delivery log hands no receiver's body back.
    scrub_receiver_text(database)


# (version, what it does, how); append only — a released migration never changes
MIGRATIONS: tuple[tuple[int, str, Callable[[peewee.Database, Tables], None]], ...] = (
    (1, "organizations, api keys, call requests, calls", _v1_initial),
    (2, "retry policy, calling window, cancellation", _v2_retry_window_cancel),
    (3, "calls.node_id: the node that claimed a call, for crash recovery", _v3_calls_node),
    (4, "webhooks: request callback URLs, signing secrets, outbox", _v4_webhooks),
    (5, "calls: steps and legs kept as typed records, not the client's JSON",
     _v5_typed_call_reports),
    (6, "nodes: one lease per node id (host, pid, started, heartbeat)", _v6_node_leases),
    (7, "operator keys; webhook delivery log without receivers' answers", _v7_operators),
    (8, "answering-machine detection: the request's mode, each call's verdict",
     _v8_machine_detection),
    (9, "calls.switch: the FreeSWITCH of a pool a call was placed on", _v9_calls_switch),
)


def applied_versions(database: peewee.Database) -> set[int]:
    """The versions of the migrations ``database`` has had."""
    if not database.table_exists("schema_version"):
        return set()
    return {int(row[0]) for row in database.execute_sql("SELECT version FROM schema_version")}


def current_version(database: peewee.Database) -> int:
    """The schema version ``database`` is at: the newest migration with every one before it
    applied (0 for an empty database). Versions are numbered as branches were merged, so a
    database can have 4 without 2; it is then at 1, and ``migrate`` applies 2."""
    applied = applied_versions(database)
    version = 0
    for known, _, _ in MIGRATIONS:
        if known not in applied:
            return version
        version = known
    return max(applied, default=version)  # a newer robocall's database reports its own


def migrate(database: peewee.Database, *, up_to: int | None = None) -> list[int]:
    """Apply every migration the database has not had, in order (those numbered up to
    ``up_to`` only, if given); return the versions applied."""
    tables = bind_models(database)
    applied: list[int] = []
    try:
        with database.connection_context():
            with database.atomic():
                if is_postgresql(database):
                    database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
                database.execute_sql(
                    "CREATE TABLE IF NOT EXISTS schema_version "
                    "(version INTEGER PRIMARY KEY, description TEXT NOT NULL,"
                    " applied_at TEXT NOT NULL)"
                )
            for version, description, apply in MIGRATIONS:
                if up_to is not None and version > up_to:
                    break
                with database.atomic():
                    if is_postgresql(database):
                        database.execute_sql(
                            "SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,)
                        )
                    if version in applied_versions(database):
                        continue
                    apply(database, tables)
                    database.execute_sql(
                        "INSERT INTO schema_version (version, description, applied_at) "
                        f"VALUES ({database.param}, {database.param}, {database.param})",
                        (version, description, datetime.now(UTC).isoformat()),
                    )
                    applied.append(version)
    except peewee.PeeweeException as err:
        raise StoreError(f"migration failed: {err}") from err
    return applied
