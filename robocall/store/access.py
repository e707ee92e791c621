"""The repository's queries for who may do what: organizations listed, API keys listed and
revoked, operator keys.

Part of :class:`robocall.store.repo.Repo` (a mixin, as ``store.dialing`` is). The operator key
table (created by migration 7) is bound here rather than in ``store.models`` so the first
migration's ``create_tables`` never creates it too.

A key, tenant or operator, is stored as its SHA-256 only; its row id is what an operator lists
and revokes it by, so listing keys never shows one. Every request resolves its key here again,
with no cache in between: a revoked key is refused by the very next request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import peewee

from robocall.errors import NotFound
from robocall.store.models import Tables


def hash_key(key: str) -> str:
    """The SHA-256 hex digest under which a key is stored (the key itself never is)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class KeyRecord:
    """One key as an operator lists it: never the key, only its id and its dates."""

    id: int
    owner: str  # the organization's id (an API key) or the holder's name (an operator key)
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class Operator:
    """Who an operator key was given to."""

    key_id: int
    name: str


def bind_operator_key_model(database: peewee.Database) -> Any:
    """The operator key model class for ``database``."""

    class OperatorKey(peewee.Model):
        id = peewee.AutoField()
        name = peewee.TextField()  # who holds it, as the operator named them
        key_hash = peewee.CharField(max_length=64, unique=True)  # SHA-256 hex; never the key
        created_at = peewee.DateTimeField()
        revoked_at = peewee.DateTimeField(null=True)

        class Meta:
            table_name = "operator_keys"

    OperatorKey._meta.set_database(database)
    return OperatorKey


class AccessQueries:
    """Keys and the operator's settings. Mixed into ``Repo``, which provides the plumbing."""

    _db: peewee.Database
    _tables: Tables
    _now: Callable[[], datetime]
    _writing: Callable[..., AbstractContextManager[None]]
    _session: Callable[[], AbstractContextManager[None]]
    _operator_key_model: Any = None

    @property
    def _operator_keys(self) -> Any:
        if self._operator_key_model is None:
            self._operator_key_model = bind_operator_key_model(self._db)
        return self._operator_key_model

    # --- organizations -----------------------------------------------------------------------

    def organization_rows(self) -> list[Any]:
        """Every organization's row, oldest first (``Repo.list_organizations`` shapes them)."""
        organization = self._tables.organization
        with self._session():
            return list(organization.select().order_by(organization.created_at, organization.id))

    # --- API keys ------------------------------------------------------------------------------

    def add_api_key(self, org_id: str, key: str) -> int:
        """Store ``key``'s hash for ``org_id``; its id (NotFound if there is no such org)."""
        with self._writing():
            organization = self._tables.organization
            if organization.get_or_none(organization.id == org_id) is None:
                raise NotFound(f"no organization {org_id}")
            return int(
                self._tables.api_key.insert(
                    key_hash=hash_key(key), organization=org_id, created_at=self._now()
                ).execute()
            )

    def api_keys(self, org_id: str) -> list[KeyRecord]:
        """The organization's keys, live and revoked, oldest first (NotFound if no such org)."""
        api_key, organization = self._tables.api_key, self._tables.organization
        with self._session():
            if organization.get_or_none(organization.id == org_id) is None:
                raise NotFound(f"no organization {org_id}")
            rows = api_key.select().where(api_key.organization == org_id).order_by(api_key.id)
            return [
                KeyRecord(row.id, org_id, row.created_at, row.revoked_at) for row in rows
            ]

    def revoke_api_key(self, key_id: int) -> KeyRecord:
        """Revoke the API key ``key_id`` (again is no change); NotFound if there is none."""
        return self._revoke(self._tables.api_key, key_id, "API key", lambda row: row.org_id)

    # --- operator keys -------------------------------------------------------------------------

    def add_operator_key(self, name: str, key: str) -> int:
        """Store ``key``'s hash as an operator key held by ``name``; its id."""
        with self._writing():
            return int(
                self._operator_keys.insert(
                    name=name, key_hash=hash_key(key), created_at=self._now()
                ).execute()
            )

    def operator_for_key(self, key: str) -> Operator | None:
        """Who holds ``key``, if it is a live (unrevoked) operator key."""
        operator_key = self._operator_keys
        with self._session():
            row = operator_key.get_or_none(
                (operator_key.key_hash == hash_key(key)) & operator_key.revoked_at.is_null()
            )
        return Operator(row.id, row.name) if row is not None else None

    def operator_keys(self) -> list[KeyRecord]:
        """Every operator key, live and revoked, oldest first."""
        operator_key = self._operator_keys
        with self._session():
            rows = operator_key.select().order_by(operator_key.id)
            return [KeyRecord(row.id, row.name, row.created_at, row.revoked_at) for row in rows]

    def revoke_operator_key(self, key_id: int) -> KeyRecord:
        """Revoke the operator key ``key_id`` (again is no change); NotFound if there is none."""
        return self._revoke(self._operator_keys, key_id, "operator key", lambda row: row.name)

    def _revoke(
        self, model: Any, key_id: int, what: str, owner: Callable[[Any], str]
    ) -> KeyRecord:
        with self._writing(durable=True):
            row = model.get_or_none(model.id == key_id)
            if row is None:
                raise NotFound(f"no {what} {key_id}")
            if row.revoked_at is None:
                row.revoked_at = self._now()
                model.update(revoked_at=row.revoked_at).where(model.id == key_id).execute()
        return KeyRecord(row.id, owner(row), row.created_at, row.revoked_at)
