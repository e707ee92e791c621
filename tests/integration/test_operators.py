"""Operators and tenants, over real HTTP and the real command line (both databases): a tenant's
key manages its calls and reads its lines, only the operator changes them; keys are listed by id
and a revoked key is refused by the very next request."""

from __future__ import annotations

import re

import requests

from robocall.api.auth import API_KEY_HEADER, OPERATOR_KEY_HEADER
from robocall.cli import EXIT_NOT_FOUND, EXIT_USAGE
from tests.integration.test_api_cli import robocall
from tests.support.api_server import RunningApi
from tests.support.requests_data import seed_with
from tests.support.service import wait_for


def _get(api: RunningApi, path: str, headers: dict[str, str]) -> requests.Response:
    return requests.get(api.url(path), headers=headers, timeout=30)


def test_a_tenant_key_reads_its_lines_but_cannot_change_them(api: RunningApi):
    # given an organization of 4 lines and its key
    _, key = api.new_key(lines=4)
    # when the tenant tries to raise its lines and pace
    answer = requests.put(api.url("/v1/lines"), json={"maxConcurrentCalls": 100_000,
                                                       "cps": 1000},
                          headers={API_KEY_HEADER: key}, timeout=30)
    # then it is refused, saying whose setting it is and how the operator changes it
    assert answer.status_code == 403
    assert answer.json() == {
        "status": "error",
        "message": "an organization's lines, cps and line rule are set by the operator: "
                   "`robocall org set-lines`, or PUT /v1/organizations/{orgId}/lines with an "
                   "operator key in x-robocall-operator-key",
    }
    # and nothing changed, as the tenant can still read
    lines = _get(api, "/v1/lines", {API_KEY_HEADER: key})
    assert lines.status_code == 200
    assert (lines.json()["maxConcurrentCalls"], lines.json()["cps"]) == (4, 5.0)


def test_an_operator_key_from_the_cli_sets_lines_pace_and_line_rule(
    api: RunningApi, database_url: str
):
    # given an organization, and an operator key made by the command line
    org_id, key = api.new_key(lines=4)
    made = robocall("operator", "key", "create", "noc team", database=database_url)
    assert made.returncode == 0, made.stderr
    operator_key = made.stdout.strip()
    assert operator_key.startswith("ro_") and "operator key id" in made.stderr
    # when the operator changes the organization's lines, pace and line rule over HTTP
    changed = api.set_lines(operator_key, org_id, {
        "maxConcurrentCalls": 12, "cps": 2.5,
        "lineRule": {"variable": "robocall_tenant", "value": "acme"},
    })
    # then the change is stored and answered with the lines report
    assert changed.status_code == 200, changed.text
    assert (changed.json()["maxConcurrentCalls"], changed.json()["cps"]) == (12, 2.5)
    # and the tenant reads the new count, and the operator's list shows the rule
    assert _get(api, "/v1/lines", {API_KEY_HEADER: key}).json()["maxConcurrentCalls"] == 12
    listed = _get(api, "/v1/organizations", {OPERATOR_KEY_HEADER: operator_key})
    assert listed.status_code == 200
    [mine] = [org for org in listed.json()["organizations"] if org["id"] == org_id]
    assert mine["lineRule"] == {"variable": "robocall_tenant", "value": "acme"}
    assert (mine["maxConcurrentCalls"], mine["cps"]) == (12, 2.5)
    # and the operator reads one organization's lines too; an unknown one is a 404
    one = _get(api, f"/v1/organizations/{org_id}/lines", {OPERATOR_KEY_HEADER: operator_key})
    assert one.status_code == 200 and one.json()["maxConcurrentCalls"] == 12
    assert api.set_lines(operator_key, "org_nobody", {"cps": 1}).status_code == 404


def test_neither_kind_of_key_opens_the_others_resources(api: RunningApi):
    # given a tenant's key and an operator's key
    org_id, key = api.new_key()
    operator_key = api.new_operator_key()
    # when each is used where the other belongs
    tenant_on_operator = api.set_lines(key, org_id, {"maxConcurrentCalls": 99})
    tenant_in_operator_header = _get(api, "/v1/organizations", {API_KEY_HEADER: key})
    operator_on_calls = requests.post(api.url("/v1/call"), json=seed_with("op-call"),
                                      headers={OPERATOR_KEY_HEADER: operator_key}, timeout=30)
    # then each is a 403 saying which key is needed, and nothing changed or was stored
    assert tenant_on_operator.status_code == 401  # a tenant key is no operator key
    assert tenant_in_operator_header.status_code == 403
    assert "an organization's API key cannot use it" in tenant_in_operator_header.json()[
        "message"]
    assert operator_on_calls.status_code == 403
    assert "operator key does not manage an organization's calls" in operator_on_calls.json()[
        "message"]
    assert api.status(key, "op-call").status_code == 404
    assert api.repo.get_organization(org_id).max_concurrent_calls == 4  # type: ignore[union-attr]
    # and an unknown or missing operator key is a 401
    assert _get(api, "/v1/organizations", {OPERATOR_KEY_HEADER: "ro_nope"}).status_code == 401
    assert _get(api, "/v1/organizations", {}).status_code == 401


def test_a_key_revoked_with_the_cli_is_refused_by_the_next_request(
    api: RunningApi, database_url: str
):
    # given an organization and two keys made by the command line, both in use
    org_id = robocall("org", "create", "Revokers", "--lines", "2",
                      database=database_url).stdout.strip()
    made = [robocall("key", "create", org_id, database=database_url) for _ in range(2)]
    kept, revoked = (m.stdout.strip() for m in made)
    for key in (kept, revoked):
        for _ in range(3):  # used more than once, so any cache would hold it
            assert _get(api, "/v1/lines", {API_KEY_HEADER: key}).status_code == 200
    # when the operator lists the organization's keys
    listed = robocall("key", "list", org_id, database=database_url)
    # then each key shows by id with its dates, and no key is revealed
    assert listed.returncode == 0, listed.stderr
    rows = listed.stdout.strip().splitlines()
    assert rows[0].split() == ["ID", "ORGANIZATION", "CREATED", "REVOKED"]
    ids = [row.split()[0] for row in rows[1:]]
    assert len(ids) == 2 and all(row.split()[1] == org_id for row in rows[1:])
    assert kept not in listed.stdout and revoked not in listed.stdout
    second_id = re.search(r"key id (\d+)", made[1].stderr).group(1)  # type: ignore[union-attr]
    assert ids[1] == second_id
    # when the second key is revoked
    done = robocall("key", "revoke", second_id, database=database_url)
    assert done.returncode == 0, done.stderr
    # then the very next request with it is a 401, and the other key still works
    refused = _get(api, "/v1/lines", {API_KEY_HEADER: revoked})
    assert refused.status_code == 401 and refused.json()["message"] == "unknown API key"
    assert _get(api, "/v1/lines", {API_KEY_HEADER: kept}).status_code == 200
    # and the list shows when it was revoked
    after = robocall("key", "list", org_id, database=database_url).stdout.splitlines()
    assert after[1].split()[-1] == "-" and after[2].split()[-1].startswith("20")


def test_a_revoked_operator_key_is_refused_by_the_next_request(
    api: RunningApi, database_url: str
):
    made = robocall("operator", "key", "create", "night shift", database=database_url)
    operator_key = made.stdout.strip()
    key_id = re.search(r"operator key id (\d+)", made.stderr).group(1)  # type: ignore[union-attr]
    assert _get(api, "/v1/organizations", {OPERATOR_KEY_HEADER: operator_key}).status_code == 200
    listed = robocall("operator", "key", "list", database=database_url).stdout
    assert "night shift" in listed and operator_key not in listed
    assert robocall("operator", "key", "revoke", key_id, database=database_url).returncode == 0
    assert _get(api, "/v1/organizations", {OPERATOR_KEY_HEADER: operator_key}).status_code == 401


def test_the_operators_commands_list_change_and_refuse_empty_names(database_url: str):
    # given an organization made by the command line
    org_id = robocall("org", "create", "Listed Co", "--lines", "3",
                      database=database_url).stdout.strip()
    # when the operator changes its lines and line rule
    changed = robocall("org", "set-lines", org_id, "--lines", "7", "--cps", "2",
                       "--line-rule", "accountcode=listed", database=database_url)
    assert changed.returncode == 0, changed.stderr
    # then `org list` shows it as changed
    rows = robocall("org", "list", database=database_url).stdout.splitlines()
    assert rows[0].split() == ["ID", "NAME", "LINES", "CPS", "LINE", "RULE"]
    [mine] = [row for row in rows if row.startswith(org_id)]
    assert mine.split()[-3:] == ["7", "2", "accountcode=listed"] and "Listed Co" in mine
    # and bad input is one line and an exit code, changing nothing
    refusals = [
        (robocall("org", "create", "  ", "--lines", "2", database=database_url), EXIT_USAGE,
         "the organization's name is empty"),
        (robocall("operator", "key", "create", "", database=database_url), EXIT_USAGE,
         "the key holder's name is empty"),
        (robocall("org", "set-lines", org_id, database=database_url), EXIT_USAGE,
         "give --lines, --cps, --line-rule"),
        (robocall("org", "set-lines", org_id, "--line-rule", "accountcode=a,b",
                  database=database_url), EXIT_USAGE, "holds ','"),
        (robocall("org", "set-lines", org_id, "--lines", "100001", database=database_url),
         EXIT_USAGE, "--lines must be 0 to 100000"),
        (robocall("org", "set-lines", "org_nobody", "--lines", "2", database=database_url),
         EXIT_NOT_FOUND, "no organization org_nobody"),
        (robocall("key", "revoke", "999999", database=database_url), EXIT_NOT_FOUND,
         "no API key 999999"),
        (robocall("key", "list", "org_nobody", database=database_url), EXIT_NOT_FOUND,
         "no organization org_nobody"),
    ]
    for done, code, message in refusals:
        assert (done.returncode, done.stdout) == (code, ""), done.stderr
        assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    again = robocall("org", "list", database=database_url).stdout.splitlines()
    assert [row for row in again if row.startswith(org_id)] == [mine]


def test_lines_set_with_the_cli_reach_a_running_dialer(start_service):
    # given robocall dialling for an organization of 6 lines
    running = start_service(lines=6)
    database = running.service.settings.database_url
    # when the operator changes its lines and pace from another process
    done = robocall("org", "set-lines", running.org_id, "--lines", "2", "--cps", "3",
                    database=database)
    assert done.returncode == 0, done.stderr
    # then the dialer's own report (what it dials by) shows them shortly
    report = wait_for(
        lambda: (r := running.get("/v1/lines").json())["maxConcurrentCalls"] == 2 and r,
        "the dialer to reload the organization",
    )
    assert report["cps"] == 3.0 and report["busyFromOtherApps"] is not None
