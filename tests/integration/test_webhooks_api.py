"""The webhook parts of the API and CLI: callbackUrl refused with its path, the signing secret
made with the organization, printed and rotated by ``robocall org secret``."""

from __future__ import annotations

from robocall import bootstrap
from robocall.cli import EXIT_NOT_FOUND
from tests.integration.test_api_cli import robocall
from tests.support.api_server import RunningApi
from tests.support.requests_data import seed_with


def test_a_non_http_callback_url_is_refused_naming_its_path(api: RunningApi):
    # given a request whose callbackUrl is not http(s)
    _, key = api.new_key()
    body = seed_with("hook-ftp")
    body["callbackUrl"] = "ftp://hooks.example.com/robocall"
    # when it is posted
    answer = api.post_call(key, body)
    # then it is refused naming the field, and nothing is stored
    assert answer.status_code == 400
    assert answer.json()["message"] == "callbackUrl: must be an http:// or https:// URL"
    assert api.status(key, "hook-ftp").status_code == 404


def test_an_overlong_callback_url_is_refused_by_the_contract(api: RunningApi):
    _, key = api.new_key()
    body = seed_with("hook-long")
    body["callbackUrl"] = "https://example.com/" + "a" * 2000
    answer = api.post_call(key, body)
    assert answer.status_code == 400
    assert answer.json()["message"].startswith("callbackUrl: ")


def test_a_new_organization_has_a_secret_the_cli_prints_and_rotates(database_url, repo):
    # given an organization made by the CLI
    created = robocall("org", "create", "acme", "--lines", "2", database=database_url)
    assert created.returncode == 0, created.stderr
    org_id = created.stdout.strip()
    # when its secret is printed twice, then it is the stored one, the same each time
    first = robocall("org", "secret", org_id, database=database_url)
    assert first.returncode == 0, first.stderr
    secret = first.stdout.strip()
    assert secret.startswith("whsec_") and secret == bootstrap.webhook_secret(repo, org_id)
    assert robocall("org", "secret", org_id, database=database_url).stdout.strip() == secret
    # and --rotate replaces it
    rotated = robocall("org", "secret", org_id, "--rotate", database=database_url)
    assert rotated.stdout.strip() not in ("", secret)
    assert bootstrap.webhook_secret(repo, org_id) == rotated.stdout.strip()


def test_the_cli_names_an_unknown_organization(database_url):
    answer = robocall("org", "secret", "org_nope", database=database_url)
    assert answer.returncode == EXIT_NOT_FOUND and "no organization org_nope" in answer.stderr
