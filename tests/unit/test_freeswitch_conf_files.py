"""freeswitch-conf/ and docker/ as files: safe defaults, an unfilled template, the two in step.

What FreeSWITCH makes of these files is checked against a real one in
tests/lab/test_freeswitch_conf_lab.py; this checks what can be read without one.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from robocall.config import Settings

ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = ROOT / "freeswitch-conf"
DOCKER_DIR = ROOT / "docker"
COMMENTED_GATEWAY = re.compile(r"<!--\s*(<gateway .*?</gateway>)\s*-->", re.S)


def params(element: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in element.iter("param")}


def template_gateway() -> ET.Element:
    found = COMMENTED_GATEWAY.search((CONF_DIR / "sip_profiles/robocall/trunk.xml").read_text())
    assert found is not None, "the template's <gateway> is not inside a comment"
    return ET.fromstring(found.group(1))


@pytest.mark.parametrize(
    "path",
    sorted(p.relative_to(ROOT) for p in [*CONF_DIR.rglob("*.xml"), *DOCKER_DIR.rglob("*.xml")]),
    ids=str,
)
def test_every_xml_file_is_well_formed(path: Path) -> None:
    ET.parse(ROOT / path)


def test_event_socket_listens_on_loopback_behind_an_acl_with_a_placeholder_password() -> None:
    settings = params(ET.parse(CONF_DIR / "autoload_configs/event_socket.conf.xml").getroot())
    assert settings["listen-ip"] == "127.0.0.1"
    assert settings["apply-inbound-acl"] == "loopback.auto"
    assert settings["password"].startswith("CHANGE-ME")
    assert settings["password"] != "ClueCon"


def test_gateway_template_is_inactive_until_filled_in_and_points_nowhere_real() -> None:
    # Given the shipped template
    shipped = ET.parse(CONF_DIR / "sip_profiles/robocall/trunk.xml").getroot()
    # Then FreeSWITCH would load no gateway from it as shipped
    assert list(shipped.iter("gateway")) == []
    # And the commented gateway is the one robocall dials by default, with every value to fill in
    gateway = template_gateway()
    values = params(gateway)
    assert gateway.get("name") == Settings().gateway
    assert "{gateway}" in Settings().dial_template
    assert values["username"] == values["password"] == "FILL-IN"
    for key in ("proxy", "realm", "from-domain"):
        assert values[key].endswith(".invalid"), key


def test_docker_gateway_is_the_template_filled_in_without_ping() -> None:
    docker_gateway = ET.parse(DOCKER_DIR / "freeswitch/trunk.xml").getroot().find("gateway")
    assert docker_gateway is not None
    assert docker_gateway.get("name") == template_gateway().get("name")
    assert set(params(docker_gateway)) == set(params(template_gateway())) - {"ping"}


def test_robocall_profile_dials_out_only_and_hears_rfc2833() -> None:
    profile = ET.parse(CONF_DIR / "sip_profiles/robocall.xml").getroot()
    settings = params(profile.find("settings"))
    contexts = {
        c.get("name")
        for c in ET.parse(CONF_DIR / "dialplan/robocall.xml").getroot().iter("context")
    }
    assert profile.get("name") == "robocall"
    assert settings["disable-register"] == "true"
    assert settings["auth-calls"] == "true"
    assert settings["context"] in contexts
    assert settings["dtmf-type"] == "rfc2833"
    assert settings["rfc2833-pt"] == "101"


@pytest.mark.parametrize(
    ("extension", "routed"),
    [
        ("12", True),
        ("1000", True),
        ("1234567890", True),
        ("1", False),
        ("12345678901", False),
        ("10a0", False),
        ("1000@evil", False),
    ],
)
def test_extension_context_routes_exactly_the_extensions_the_api_accepts(
    extension: str, routed: bool
) -> None:
    context = next(
        c
        for c in ET.parse(CONF_DIR / "dialplan/robocall.xml").getroot().iter("context")
        if c.get("name") == "robocall-extensions"
    )
    routing = context.find("extension/condition")
    assert routing is not None and routing.get("field") == "destination_number"
    assert bool(re.search(routing.get("expression", ""), extension)) is routed


def test_extension_context_keeps_loopback_from_bowing_out() -> None:
    dialplan = ET.parse(CONF_DIR / "dialplan/robocall.xml").getroot()
    actions = [
        (a.get("application"), a.get("data"))
        for c in dialplan.iter("context")
        if c.get("name") == "robocall-extensions"
        for a in c.iter("action")
    ]
    assert actions.index(("set", "loopback_bowout=false")) < [a for a, _ in actions].index("bridge")


def test_post_load_modules_cover_what_robocall_uses() -> None:
    shipped = ET.parse(CONF_DIR / "autoload_configs/post_load_modules.conf.xml").getroot()
    modules = {load.get("module") for load in shipped.iter("load")}
    needed = {
        "mod_event_socket",
        "mod_sofia",
        "mod_commands",
        "mod_dptools",
        "mod_dialplan_xml",
        "mod_sndfile",
        "mod_native_file",
        "mod_tone_stream",
        "mod_http_cache",
    }
    assert needed <= modules


def test_compose_pins_freeswitch_and_keeps_the_stack_off_the_host_network() -> None:
    compose = yaml.safe_load((DOCKER_DIR / "docker-compose.yml").read_text())
    services = compose["services"]
    image = services["freeswitch"]["image"]
    assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+", image), image
    assert all(network.get("internal") is True for network in compose["networks"].values())
    assert not any("ports" in service for service in services.values())
    assert services["robocall"]["network_mode"] == "service:freeswitch"
    assert "127.0.0.1:8021" in services["robocall"]["environment"]["ROBOCALL_SWITCH"]
    assert "../freeswitch-conf:/robocall/freeswitch-conf:ro" in services["freeswitch"]["volumes"]


def test_docker_start_script_merges_every_shipped_file_but_the_template_and_snippets() -> None:
    # Given the files an admin merges (the README's steps), the template being filled in instead
    to_merge = {
        str(p.relative_to(CONF_DIR))
        for p in CONF_DIR.rglob("*.xml")
        if p.parts[len(CONF_DIR.parts)] != "snippets" and p.name != "trunk.xml"
    }
    # When the lab stack's entry point is read
    start = (DOCKER_DIR / "freeswitch/start.sh").read_text()
    merged = set(re.findall(r'"\$drop_in/([\w./-]+\.xml)"', start))
    # Then it merges exactly those
    assert merged == to_merge
