"""Two robocall nodes (two `robocall serve` processes) on one PostgreSQL and one switch: an
organization's dispatch is serialized through the database, so together they never use more
than its lines, and no call is dialled twice."""

from __future__ import annotations

from pathlib import Path

import gevent
import pytest

from robocall import bootstrap
from robocall.testing import Callee, CalleeBook, FakeSwitch
from tests.support.node_fixtures import NodeDatabase
from tests.support.node_fixtures import node_database as node_database  # noqa: F401
from tests.support.nodes import ServeProcess, originates_by_number, run_transfer_requests
from tests.support.service import TIME_SCALE

LINES = 4
CALLS_PER_NODE = 24


class OrgChannelSampler:
    """Counts the organization's live channels on the switch itself, not through robocall."""

    def __init__(self, fake: FakeSwitch, org_id: str) -> None:
        self.fake = fake
        self.org_id = org_id
        self.most = 0
        self.samples = 0
        self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        while True:
            live = sum(1 for c in self.fake.channels()
                       if c.up and c.variables.get("accountcode") == self.org_id)
            self.most = max(self.most, live)
            self.samples += 1
            gevent.sleep(0.001)

    def stop(self) -> None:
        self._greenlet.kill()


def test_two_nodes_on_one_database_never_exceed_an_organizations_lines(
    node_database: NodeDatabase, tmp_path: Path
) -> None:
    repo, database_url = node_database.repo, node_database.url
    if not database_url.startswith("postgresql"):
        pytest.skip("several nodes share PostgreSQL; SQLite is one node's database")
    # given one switch, an organization with 4 lines (one of them busy with another app's
    # call) and two robocall nodes on the same database
    fake = FakeSwitch(
        CalleeBook({"1000": Callee(answer_after_ms=50, hangup_after_ms=400)},
                   Callee(answer_after_ms=50)),
        time_scale=TIME_SCALE,
    ).start()
    org = bootstrap.create_organization(repo, "two nodes", lines=LINES, cps=200.0)
    key = bootstrap.create_api_key(repo, org.id)
    external = fake.start_external_call({"accountcode": org.id})
    nodes = [
        ServeProcess(database_url=database_url, switch_url=fake.url, node_id=f"node-{name}",
                     data_dir=tmp_path / name)
        for name in ("a", "b")
    ]
    sampler = OrgChannelSampler(fake, org.id)
    try:
        for node in nodes:
            node.start()
        # when each node is sent a request of 24 calls, then every call completes
        run_transfer_requests(nodes, repo, org.id, key, CALLS_PER_NODE, "nodes")
        sampler.stop()
        # and the switch never carried more than the organization's 4 lines
        assert sampler.samples > 100
        assert sampler.most <= LINES
        # and no number was dialled twice
        originated = originates_by_number(fake.received)
        assert len(originated) == 2 * CALLS_PER_NODE
        assert set(originated.values()) == {1}
        # and both nodes dialled
        claimed_by = dict(repo.database.execute_sql(
            "SELECT node_id, COUNT(*) FROM calls WHERE org_id = %s GROUP BY node_id",
            (org.id,)).fetchall())
        assert set(claimed_by) == {"node-a", "node-b"}
    finally:
        sampler.stop()
        for node in nodes:
            node.stop(timeout=10)
        fake.end_external_call(external)
        fake.stop()
