"""The node's lease: one process per node id, proved in the database.

A node takes its lease before it dials anything (``robocall serve`` refuses to start, naming
the holder, while another live process holds it), renews it every few seconds, and gives it up
on a clean stop. The lease is taken over when its holder is provably gone: its heartbeat is
older than the expiry, or it ran on this host and its pid is no longer alive (a kill -9 is
recovered at once on restart, without waiting for the expiry).

A process that cannot renew its lease stops dialing: every claim checks the lease in its own
transaction, and every originate checks that the lease was renewed recently (so a process that
was frozen longer than the expiry, and whose node was taken over meanwhile, sends nothing when it
wakes up before its heartbeat has told it so).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from typing import Protocol

import gevent

from robocall.errors import StoreError
from robocall.store.nodes import NodeLease

log = logging.getLogger(__name__)

LEASE_EXPIRY_SECONDS = 30.0
HEARTBEAT_SECONDS = 5.0


class LeaseStore(Protocol):
    """The lease queries (``robocall.store.repo.Repo`` implements them)."""

    def take_lease(
        self,
        node_id: str,
        *,
        host: str,
        pid: int,
        token: str,
        expiry_seconds: float,
        holder_gone: Callable[[NodeLease], bool],
    ) -> NodeLease | None: ...

    def renew_lease(self, node_id: str, token: str) -> bool: ...

    def release_lease(self, node_id: str, token: str) -> None: ...


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


class LeaseKeeper:
    """Takes, renews and releases this process's lease on ``node_id``."""

    def __init__(
        self,
        store: LeaseStore,
        node_id: str,
        *,
        expiry_seconds: float = LEASE_EXPIRY_SECONDS,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        host: str | None = None,
        pid: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_lost: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.node_id = node_id
        self.expiry_seconds = expiry_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.host = host or socket.gethostname()
        self.pid = pid if pid is not None else os.getpid()
        self.token = secrets.token_hex(16)
        self.clock = clock
        self.on_lost = on_lost
        self.held = False
        self._renewed_at = -float("inf")
        self._heartbeat: gevent.Greenlet | None = None

    def take(self) -> NodeLease | None:
        """Take the lease (NodeBusy while another live process holds it); returns the lease
        taken over from a gone holder, if any. Then renew it in the background."""
        previous = self.store.take_lease(
            self.node_id,
            host=self.host,
            pid=self.pid,
            token=self.token,
            expiry_seconds=self.expiry_seconds,
            holder_gone=self._holder_gone,
        )
        self.held = True
        self._renewed_at = self.clock()
        if previous is not None:
            log.warning("node %s: took the lease over from %s", self.node_id, previous.describe())
        self._heartbeat = gevent.spawn(self._renew_forever)
        return previous

    def _holder_gone(self, holder: NodeLease) -> bool:
        # Only a process of this host can be checked; one elsewhere is gone once it expires.
        return holder.host == self.host and holder.pid != self.pid and not pid_alive(holder.pid)

    def fresh(self) -> bool:
        """Whether the lease is provably still ours: renewed well within its expiry."""
        return self.held and self.clock() - self._renewed_at < self.expiry_seconds / 2

    def _renew_forever(self) -> None:
        while self.held:
            gevent.sleep(self.heartbeat_seconds)
            try:
                renewed = self.store.renew_lease(self.node_id, self.token)
            except StoreError as err:
                log.warning("node %s: could not renew the lease: %s", self.node_id, err)
                continue  # fresh() turns false on its own if this lasts
            if renewed:
                self._renewed_at = self.clock()
                continue
            log.error("node %s: the lease was taken over by another process; dialing stops",
                      self.node_id)
            self.held = False
            self.on_lost()
            return

    def release(self) -> None:
        """A clean stop: the node id is free for the next process at once."""
        if self._heartbeat is not None:
            self._heartbeat.kill(block=False)
        if not self.held:
            return
        self.held = False
        try:
            self.store.release_lease(self.node_id, self.token)
        except StoreError as err:
            log.warning("node %s: could not release the lease (it expires on its own): %s",
                        self.node_id, err)
