"""Where a webhook may go: every spelling of an inside address is refused, public ones pass,
and an operator's allowed network opens exactly that network (names resolved from a table)."""

from __future__ import annotations

import ipaddress

import pytest

from robocall.calls.webhook_targets import TargetPolicy, literal_address
from robocall.config import Settings
from robocall.errors import ConfigError, WebhookTargetRefused
from tests.support.resolver import LocalResolver

PUBLIC_ONLY = TargetPolicy(resolver=LocalResolver())


@pytest.mark.parametrize(
    ("host", "seen_as", "kind"),
    [
        ("127.0.0.1", "127.0.0.1", "a loopback address"),
        ("2130706433", "127.0.0.1", "a loopback address"),  # decimal
        ("0177.0.0.1", "127.0.0.1", "a loopback address"),  # octal
        ("0x7f.1", "127.0.0.1", "a loopback address"),  # hexadecimal, short form
        ("127.1", "127.0.0.1", "a loopback address"),
        ("::1", "::1", "a loopback address"),
        ("169.254.169.254", "169.254.169.254", "a link-local address"),
        ("0xa9fea9fe", "169.254.169.254", "a link-local address"),
        ("fe80::1", "fe80::1", "a link-local address"),
        ("10.0.0.1", "10.0.0.1", "a private address"),
        ("172.16.5.4", "172.16.5.4", "a private address"),
        ("192.168.1.1", "192.168.1.1", "a private address"),
        ("fd12:3456::1", "fd12:3456::1", "a private address"),
        ("100.64.0.1", "100.64.0.1", "not a public address"),  # carrier-grade NAT
        ("224.0.0.1", "224.0.0.1", "a multicast address"),
        ("239.255.255.250", "239.255.255.250", "a multicast address"),
        ("ff02::1", "ff02::1", "a multicast address"),
        ("0.0.0.0", "0.0.0.0", "the unspecified address"),
        ("0", "0.0.0.0", "the unspecified address"),
        ("::", "::", "the unspecified address"),
    ],
)
def test_an_inside_address_is_refused_in_any_spelling(host: str, seen_as: str, kind: str):
    with pytest.raises(WebhookTargetRefused) as refused:
        PUBLIC_ONLY.vet(host, 80)
    assert str(refused.value).startswith(f"host {host} is {seen_as}, {kind}")


@pytest.mark.parametrize(
    ("host", "carried"),
    [
        ("::ffff:127.0.0.1", "127.0.0.1, a loopback address"),  # IPv4-mapped
        ("::ffff:a9fe:a9fe", "169.254.169.254, a link-local address"),
        ("2002:7f00:1::", "127.0.0.1, a loopback address"),  # 6to4
        ("64:ff9b::a00:1", "10.0.0.1, a private address"),  # NAT64
    ],
)
def test_an_ipv6_address_carrying_an_inside_ipv4_one_is_refused(host: str, carried: str):
    with pytest.raises(WebhookTargetRefused) as refused:
        PUBLIC_ONLY.vet(host, 80)
    assert f"which carries {carried}" in str(refused.value)


@pytest.mark.parametrize("host", ["93.184.216.34", "8.8.8.8", "2606:4700::1111",
                                  "::ffff:8.8.8.8"])
def test_a_public_address_passes(host: str):
    assert PUBLIC_ONLY.vet(host, 443) == [ipaddress.ip_address(host)]


def test_a_name_is_judged_by_every_address_it_resolves_to():
    resolver = LocalResolver({"mixed.test": ["8.8.8.8", "10.1.1.1"], "public.test": ["8.8.4.4"]})
    policy = TargetPolicy(resolver=resolver)
    # one inside address among public ones refuses the name whole
    with pytest.raises(WebhookTargetRefused, match="mixed.test resolves to 10.1.1.1"):
        policy.vet("mixed.test", 80)
    assert policy.vet("public.test", 80) == [ipaddress.ip_address("8.8.4.4")]
    with pytest.raises(WebhookTargetRefused, match="localhost resolves to 127.0.0.1"):
        policy.vet("localhost", 80)
    with pytest.raises(WebhookTargetRefused, match="nowhere.test does not resolve"):
        policy.vet("nowhere.test", 80)


def test_an_allowed_network_opens_that_network_only():
    policy = TargetPolicy(
        allowed_networks=Settings(webhook_allow_networks="10.20.0.0/16, fd00::/8")
        .webhook_allowed_networks,
        resolver=LocalResolver({"onprem.test": ["10.20.3.4"]}),
    )
    assert policy.vet("onprem.test", 80) == [ipaddress.ip_address("10.20.3.4")]
    assert policy.vet("::ffff:10.20.0.9", 80)  # its IPv4-mapped form too
    assert policy.vet("fd00::5", 80)
    for outside in ("10.21.0.1", "127.0.0.1", "169.254.169.254"):
        with pytest.raises(WebhookTargetRefused):
            policy.vet(outside, 80)


def test_a_bad_allowed_network_is_a_configuration_error():
    with pytest.raises(ConfigError, match="ROBOCALL_WEBHOOK_ALLOW_NETWORKS: '10.0.0.0/33'"):
        _ = Settings(webhook_allow_networks="10.0.0.0/33").webhook_allowed_networks


def test_names_that_only_look_numeric_are_names():
    assert literal_address("1e100.net") is None
    assert literal_address("deadbeef") is None
    assert literal_address("256.1.1.1") is None  # a part out of range: no address at all
