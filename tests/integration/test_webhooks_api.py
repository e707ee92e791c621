"""The webhook parts of the API and CLI: callbackUrl refused with its path (a bad form, or a host
inside the operator's network), the signing secret made with the organization, printed and
rotated by ``robocall org secret``. Names resolve from a table (tests.support.resolver)."""

from __future__ import annotations

import pytest

from robocall import bootstrap
from robocall.cli import EXIT_NOT_FOUND
from tests.integration.test_api_cli import robocall
from tests.support.api_server import RunningApi
from tests.support.requests_data import seed_with
from tests.support.resolver import LocalResolver


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


@pytest.mark.parametrize(
    ("url", "refusal"),
    [
        ("http://127.0.0.1:8080/hooks", "host 127.0.0.1 is 127.0.0.1, a loopback address"),
        ("http://localhost/hooks", "host localhost resolves to 127.0.0.1, a loopback address"),
        ("http://169.254.169.254/latest/meta-data/",
         "host 169.254.169.254 is 169.254.169.254, a link-local address"),
        ("http://10.0.0.7/hooks", "host 10.0.0.7 is 10.0.0.7, a private address"),
        ("http://[::1]:9000/", "host ::1 is ::1, a loopback address"),
        ("https://[::ffff:169.254.169.254]/",
         "which carries 169.254.169.254, a link-local address"),
        ("http://2130706433/", "host 2130706433 is 127.0.0.1, a loopback address"),
        ("http://0x7f.0.0.1/", "host 0x7f.0.0.1 is 127.0.0.1, a loopback address"),
        ("http://224.0.0.251/", "a multicast address"),
        ("http://0.0.0.0:80/", "the unspecified address"),
        ("http://inside.example.test/", "resolves to 192.168.4.4, a private address"),
        ("http://nowhere.example.test/", "host nowhere.example.test does not resolve"),
    ],
)
def test_a_callback_url_aimed_inside_is_refused_naming_the_field(
    start_api, url: str, refusal: str
):
    # given the API with no network allowed, and a name that resolves to a private address
    api = start_api(resolver=LocalResolver({"inside.example.test": ["192.168.4.4"]}))
    _, key = api.new_key()
    body = seed_with("hook-inside")
    body["callbackUrl"] = url
    # when a request with that callbackUrl is posted
    answer = api.post_call(key, body)
    # then it is a 400 naming callbackUrl and saying why, and nothing is stored
    assert answer.status_code == 400, answer.text
    message = answer.json()["message"]
    assert message.startswith("callbackUrl: host ") and refusal in message
    assert api.status(key, "hook-inside").status_code == 404


def test_a_public_callback_url_and_an_allowed_network_pass(start_api):
    # given the API allowing the operator's own 10.20.0.0/16, and names resolving from a table
    resolver = LocalResolver({"hooks.example.test": ["93.184.216.34"],
                              "onprem.example.test": ["10.20.1.2"]})
    api = start_api(resolver=resolver, webhook_allow_networks="10.20.0.0/16")
    _, key = api.new_key()
    # when requests with a public and an on-prem receiver are posted
    for request_id, url in [("hook-public", "https://hooks.example.test/robocall"),
                            ("hook-onprem", "http://onprem.example.test:8080/robocall")]:
        body = seed_with(request_id)
        body["callbackUrl"] = url
        # then both are stored
        assert api.post_call(key, body).status_code == 200
    # and another private network is still refused
    body = seed_with("hook-other-private")
    body["callbackUrl"] = "http://10.21.0.1/"
    assert api.post_call(key, body).status_code == 400


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
