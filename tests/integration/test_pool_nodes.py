"""Two robocall nodes (two `robocall serve` processes) on one PostgreSQL, both over the same
pool of three switches: each node counts every switch's other-app calls itself and every
node's robo calls through the store, so together they never use more than an organization's
lines, and no call is dialled twice (docs/pool.md, "Several robocall nodes")."""

from __future__ import annotations

from pathlib import Path

import pytest

from robocall import bootstrap
from robocall.testing import Callee, CalleeBook, FakeSwitch
from tests.support.node_fixtures import NodeDatabase
from tests.support.node_fixtures import node_database as node_database  # noqa: F401
from tests.support.nodes import ServeProcess, originates_by_number, run_transfer_requests
from tests.support.pool import PoolSampler
from tests.support.service import TIME_SCALE

LINES = 6
CALLS_PER_NODE = 24


def test_two_nodes_over_three_switches_never_exceed_an_organizations_lines(
    node_database: NodeDatabase, tmp_path: Path
) -> None:
    repo, database_url = node_database.repo, node_database.url
    if not database_url.startswith("postgresql"):
        pytest.skip("several nodes share PostgreSQL; SQLite is one node's database")
    # given three switches, an organization with 6 lines (two of them busy with another app's
    # calls on the third switch) and two robocall nodes over all three switches
    fakes = [
        # (each transfer holds its line 200 ms: with shorter calls one node could claim every
        # call before the other's first turn, and "both nodes dialled" would fail by chance)
        FakeSwitch(CalleeBook({"1000": Callee(answer_after_ms=50, hangup_after_ms=2000)},
                              Callee(answer_after_ms=50)), time_scale=TIME_SCALE).start()
        for _ in range(3)
    ]
    pool_url = ",".join(f"{fake.url}#sw{index}" for index, fake in enumerate(fakes))
    org = bootstrap.create_organization(repo, "pool nodes", lines=LINES, cps=200.0)
    key = bootstrap.create_api_key(repo, org.id)
    external = [fakes[2].start_external_call({"accountcode": org.id}) for _ in range(2)]
    nodes = [
        ServeProcess(database_url=database_url, switch_url=pool_url, node_id=f"node-{name}",
                     data_dir=tmp_path / name)
        for name in ("a", "b")
    ]
    sampler = PoolSampler(fakes, {org.id: LINES})
    try:
        for node in nodes:
            node.start()
        # when each node is sent a request of 24 calls, then every call completes
        run_transfer_requests(nodes, repo, org.id, key, CALLS_PER_NODE, "pool-nodes")
        sampler.sample()
        sampler.stop()
        seen = sampler.orgs[org.id]
        # and the switches together never carried more than the organization's 6 lines
        assert sampler.samples > 100
        assert seen.violations == 0
        assert seen.max_total_at_robo_dial <= LINES
        # and no number was dialled twice, on any switch
        originated: dict[str, int] = {}
        for fake in fakes:
            for number, count in originates_by_number(fake.received).items():
                originated[number] = originated.get(number, 0) + count
        assert len(originated) == 2 * CALLS_PER_NODE
        assert set(originated.values()) == {1}
        # and both nodes dialled, over the switches the other app's calls left least loaded
        placed = repo.database.execute_sql(
            "SELECT node_id, switch, COUNT(*) FROM calls WHERE org_id = %s "
            "GROUP BY node_id, switch", (org.id,)).fetchall()
        assert {node for node, _, _ in placed} == {"node-a", "node-b"}
        switches = {switch for _, switch, _ in placed}
        assert {"sw0", "sw1"} <= switches <= {"sw0", "sw1", "sw2"}
    finally:
        sampler.stop()
        for node in nodes:
            node.stop(timeout=10)
        for channel_uuid in external:
            fakes[2].end_external_call(channel_uuid)
        for fake in fakes:
            fake.stop()
