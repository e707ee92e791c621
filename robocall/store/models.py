"""The tables, as peewee models bound to one database.

Models are built per database by :func:`bind_models` rather than bound globally, so one
process (the test suite) can hold a SQLite and a PostgreSQL store at once without either
rebinding the other's tables. Only ``robocall.store.repo`` and the migrations use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import peewee


@dataclass(frozen=True)
class Tables:
    """The model classes of one database (typed Any: peewee builds their fields at run time)."""

    organization: Any
    api_key: Any
    call_request: Any
    call: Any
    request_count: Any

    def all(self) -> list[type[peewee.Model]]:
        return [self.organization, self.api_key, self.call_request, self.call, self.request_count]


def bind_models(database: peewee.Database) -> Tables:
    """Model classes for ``database``'s tables."""

    class Base(peewee.Model):
        class Meta:
            pass

    Base._meta.set_database(database)

    class Organization(Base):
        id = peewee.CharField(primary_key=True, max_length=64)
        name = peewee.TextField()
        max_concurrent_calls = peewee.IntegerField()
        cps = peewee.FloatField()
        # which FreeSWITCH channels are this organization's lines: variable=value
        line_variable = peewee.CharField(max_length=64, default="accountcode")
        line_value = peewee.CharField(max_length=200)
        created_at = peewee.DateTimeField()

        class Meta:
            table_name = "organizations"

    class ApiKey(Base):
        id = peewee.AutoField()
        key_hash = peewee.CharField(max_length=64, unique=True)  # SHA-256 hex; never the key
        organization = peewee.ForeignKeyField(Organization, column_name="org_id", backref="keys")
        created_at = peewee.DateTimeField()
        revoked_at = peewee.DateTimeField(null=True)

        class Meta:
            table_name = "api_keys"

    class CallRequest(Base):
        id = peewee.BigAutoField()  # also the submission sequence: dispatch is FIFO by it
        # indexed by the unique (org_id, request_id) below
        organization = peewee.ForeignKeyField(Organization, column_name="org_id", index=False)
        request_id = peewee.CharField(max_length=200)
        body_hash = peewee.CharField(max_length=64)
        call_flow = peewee.TextField()  # the callFlow JSON as accepted
        enable_call_recording = peewee.BooleanField(default=False)
        status = peewee.CharField(max_length=16)
        total = peewee.IntegerField()
        created_at = peewee.DateTimeField()
        updated_at = peewee.DateTimeField()
        # extensions (migration 2): the retry policy and calling window JSON as accepted,
        # the window's bounds for the claim's filter, and when the client cancelled it
        retry_policy = peewee.TextField(null=True)
        calling_window = peewee.TextField(null=True)
        not_before = peewee.DateTimeField(null=True)
        not_after = peewee.DateTimeField(null=True)
        cancelled_at = peewee.DateTimeField(null=True)
        # migration 8: the machineDetection JSON as accepted (answering-machine detection)
        machine_detection = peewee.TextField(null=True)

        class Meta:
            table_name = "call_requests"
            indexes = ((("organization", "request_id"), True),)

    class Call(Base):
        id = peewee.BigAutoField()
        # led by the paging index below, so no index of its own
        request = peewee.ForeignKeyField(
            CallRequest, column_name="request_seq", backref="calls", index=False
        )
        # a copy of the request's organization for the dispatcher's index; not a foreign key:
        # PostgreSQL checks each one per inserted row, a third of a 100,000-call ingest
        organization = peewee.CharField(max_length=64, column_name="org_id")
        position = peewee.IntegerField()
        phone = peewee.CharField(max_length=16)
        caller = peewee.CharField(max_length=16)
        properties = peewee.TextField()  # JSON object of text values
        status = peewee.CharField(max_length=16)
        attempt = peewee.IntegerField(default=0)
        channel_uuid = peewee.CharField(max_length=64, null=True)
        # the node that claimed it (migration 3): after a crash each node recovers its own
        node = peewee.CharField(max_length=64, null=True, column_name="node_id")
        hangup_cause = peewee.CharField(max_length=64, null=True)
        answered_at = peewee.DateTimeField(null=True)
        ended_at = peewee.DateTimeField(null=True)
        duration_seconds = peewee.FloatField(null=True)
        steps = peewee.TextField(default="[]")  # callFlowSteps JSON
        monitor = peewee.TextField(default="[]")  # monitorData JSON
        created_at = peewee.DateTimeField()
        updated_at = peewee.DateTimeField()
        # migration 2: a queued call is not claimed before this (retry backoff, daily window)
        next_attempt_at = peewee.DateTimeField(null=True)
        # migration 8: who answered (human | machine | unknown) and ms from the answer to it
        answered_by = peewee.CharField(max_length=16, null=True)
        answered_by_ms = peewee.IntegerField(null=True)
        # migration 9: the switch of the pool the call was placed on (its name), for the runner,
        # recovery and a PBX admin's uuid_dump
        switch = peewee.CharField(max_length=64, null=True)

        class Meta:
            table_name = "calls"
            indexes = (
                # the dispatcher's FIFO claim: an organization's queued calls in order
                (("organization", "status", "request", "position"), False),
                # keyset paging of a request's details
                (("request", "id"), True),
            )

    class RequestCount(Base):
        """How many of a request's calls are in each status, kept by a trigger on calls."""

        request = peewee.ForeignKeyField(CallRequest, column_name="request_seq", index=False)
        status = peewee.CharField(max_length=16)
        count = peewee.IntegerField()

        class Meta:
            table_name = "request_counts"
            primary_key = peewee.CompositeKey("request", "status")

    return Tables(Organization, ApiKey, CallRequest, Call, RequestCount)
