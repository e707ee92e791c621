"""freeswitch-conf/ merged into a real FreeSWITCH: what it loads, and calls placed through it.

Runs against the lab FreeSWITCH named by ROBOCALL_LAB_ESL=host:port:password, configured by
scripts/lab_configure.py, which merges freeswitch-conf/ as freeswitch-conf/README.md says (event
socket password and port set, the gateway template filled in to point at the lab's scripted
callees) and installs those callees. Skipped when ROBOCALL_LAB_ESL is unset; fails when it is set
and the switch cannot be reached.

The test talks to FreeSWITCH over a bare inbound ESL socket of its own (``LabSwitch``), so it
checks the configuration, not robocall's ESL client.
"""

from __future__ import annotations

import json
import os
import re
import socket
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import unquote

import gevent
import pytest

from robocall.config import Settings

pytestmark = pytest.mark.lab

CONF_DIR = Path(__file__).resolve().parents[2] / "freeswitch-conf"
PLACEHOLDER_PASSWORD = "CHANGE-ME-robocall-esl-password"
LAB_EXTENSIONS = {"answers": "1000", "busy": "1001"}
# Numbers of the scripted callees (docs/lab.md): the last two digits pick the callee's behaviour.
PRESSES_1_EVERY_1_5_S = "+6580000001"
STAYS_UP = "+6580000099"
WAIT_SECONDS = 30.0
EVENTS = "CHANNEL_PARK CHANNEL_EXECUTE_COMPLETE CHANNEL_HANGUP_COMPLETE BACKGROUND_JOB DTMF"

Event = dict[str, str]


class LabSwitch:
    """One inbound ESL connection: api commands, sendmsg, and the JSON events it subscribed to."""

    def __init__(self, host: str, port: int, password: str) -> None:
        self._sock = socket.create_connection((host, port), timeout=WAIT_SECONDS)
        self._buffer = b""
        self._events: list[Event] = []
        self.event_log: list[Event] = []  # every event received, in arrival order
        greeting, _ = self._read_frame()
        if greeting.get("Content-Type") != "auth/request":
            raise ConnectionError(f"no auth/request from {host}:{port}: {greeting}")
        reply = self._command(f"auth {password}")
        if not reply.startswith("+OK"):
            raise ConnectionError(f"ESL auth refused by {host}:{port}: {reply}")
        self._command(f"event json {EVENTS}")

    def close(self) -> None:
        self._sock.close()

    def api(self, command: str) -> str:
        """Run one ``api`` command and return its body."""
        self._send(f"api {command}")
        return self._until("api/response")[1].decode()

    def sendmsg_execute(self, channel: str, app: str, arg: str) -> str:
        """Start a dialplan application on a channel; returns the Event-UUID it will carry."""
        event_uuid = str(uuid.uuid4())
        reply = self._command(
            f"sendmsg {channel}\ncall-command: execute\nexecute-app-name: {app}\n"
            f"execute-app-arg: {arg}\nEvent-UUID: {event_uuid}"
        )
        assert reply.startswith("+OK"), reply
        return event_uuid

    def originate(self, channel_vars: dict[str, str], dial_string: str) -> str:
        """``bgapi originate {vars}<dial string> &park()``; returns the channel's UUID."""
        channel = str(uuid.uuid4())
        variables = ",".join(
            f"{k}={v}" for k, v in {"origination_uuid": channel, **channel_vars}.items()
        )
        reply = self._command(f"bgapi originate {{{variables}}}{dial_string} &park()")
        assert reply.startswith("+OK Job-UUID"), reply
        return channel

    def wait_event(self, matches: Callable[[Event], bool]) -> Event:
        """The first event, buffered or new, that ``matches``; TimeoutError if none comes."""
        while True:
            for index, event in enumerate(self._events):
                if matches(event):
                    return self._events.pop(index)
            self._until("text/event-json")

    def _command(self, line: str) -> str:
        self._send(line)
        return self._until("command/reply")[0].get("Reply-Text", "")

    def _send(self, command: str) -> None:
        self._sock.sendall(command.encode() + b"\n\n")

    def _until(self, content_type: str) -> tuple[dict[str, str], bytes]:
        # Events that arrive while waiting for a reply are kept for wait_event.
        while True:
            headers, body = self._read_frame()
            if headers.get("Content-Type") == "text/event-json":
                event = json.loads(body)
                self._events.append(event)
                self.event_log.append(event)
                if content_type == "text/event-json":
                    return headers, body
            elif headers.get("Content-Type") == content_type:
                return headers, body

    def _read_frame(self) -> tuple[dict[str, str], bytes]:
        while b"\n\n" not in self._buffer:
            self._fill()
        head, self._buffer = self._buffer.split(b"\n\n", 1)
        headers = dict(line.split(": ", 1) for line in head.decode().split("\n"))
        headers = {k: unquote(v) for k, v in headers.items()}
        length = int(headers.get("Content-Length", "0"))
        while len(self._buffer) < length:
            self._fill()
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        return headers, body

    def _fill(self) -> None:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise ConnectionError("FreeSWITCH closed the event socket")
        self._buffer += chunk


@pytest.fixture(scope="module")
def lab_address() -> tuple[str, int, str]:
    setting = os.environ.get("ROBOCALL_LAB_ESL", "")
    if not setting:
        pytest.skip("ROBOCALL_LAB_ESL=host:port:password is not set")
    host, port, password = setting.split(":", 2)
    return host, int(port), password


@pytest.fixture
def switch(lab_address: tuple[str, int, str]) -> Iterator[LabSwitch]:
    host, port, password = lab_address
    try:
        connection = LabSwitch(host, port, password)
    except OSError as err:
        pytest.fail(
            f"ROBOCALL_LAB_ESL is set, but FreeSWITCH at {host}:{port} cannot be used: {err}"
        )
    yield connection
    connection.close()


def repo_xml(relative: str) -> ET.Element:
    return ET.parse(CONF_DIR / relative).getroot()


def params(element: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in element.iter("param")}


def expand_globals(switch: LabSwitch, value: str) -> str:
    """Resolve ``$${name}`` the way FreeSWITCH's preprocessor did when it loaded the file."""
    return re.sub(r"\$\$\{(\w+)\}", lambda m: switch.api(f"global_getvar {m.group(1)}"), value)


def loaded(switch: LabSwitch, section: str, tag: str, name: str) -> ET.Element:
    located = switch.api(f"xml_locate {section} {tag} name {name}")
    assert located.lstrip().startswith("<"), f"{name} is not loaded: {located!r}"
    return ET.fromstring(located)


def lab_call_vars(label: str) -> dict[str, str]:
    """The channel variables robocall puts on a robo leg, with ids unique to this test run."""
    run = uuid.uuid4().hex[:10]
    return {
        "origination_caller_id_number": "6582674904",
        "originate_timeout": "15",
        "ignore_early_media": "true",
        "accountcode": f"org-conf-{label}-{run}",
        "robocall_call_id": f"c-conf-{label}-{run}",
        "robocall_request_id": f"request-conf-{label}-{run}",
    }


def dial(number: str) -> str:
    return Settings().dial_template.format(gateway=Settings().gateway, number=number)


def listed_channels(switch: LabSwitch, pattern: str) -> list[dict[str, str]]:
    """``show channels like <pattern>``, once the channel table has caught up with the events.

    FreeSWITCH writes that table through a queue, so a channel that has just fired
    CHANNEL_PARK can still be missing from it for a moment: ask again, a bounded number of times.
    """
    for _ in range(50):
        rows = json.loads(switch.api(f"show channels like {pattern} as json")).get("rows", [])
        if rows:
            return rows
        gevent.sleep(0.1)
    return []


def answered_and_parked(switch: LabSwitch, channel: str) -> Event:
    return switch.wait_event(
        lambda e: (
            e.get("Event-Name") in {"CHANNEL_PARK", "CHANNEL_HANGUP_COMPLETE"}
            and e.get("Unique-ID") == channel
        )
    )


def completed(switch: LabSwitch, event_uuid: str) -> Event:
    return switch.wait_event(
        lambda e: (
            e.get("Event-Name") == "CHANNEL_EXECUTE_COMPLETE"
            and e.get("Application-UUID") == event_uuid
        )
    )


def hung_up(switch: LabSwitch, channel: str) -> Event:
    return switch.wait_event(
        lambda e: e.get("Event-Name") == "CHANNEL_HANGUP_COMPLETE" and e.get("Unique-ID") == channel
    )


def test_event_socket_is_loaded_as_shipped_with_the_password_changed(switch: LabSwitch) -> None:
    # Given the shipped event socket settings
    shipped = params(repo_xml("autoload_configs/event_socket.conf.xml").find("settings"))
    # When FreeSWITCH is asked which settings it loaded
    running = params(loaded(switch, "configuration", "configuration", "event_socket.conf"))
    # Then they are the shipped ones, except the password, which the lab had to change, and the
    # port, which is the lab instance's (8021 for the first)
    lab_values = {"password", "listen-port"}
    assert {k: v for k, v in running.items() if k not in lab_values} == {
        k: v for k, v in shipped.items() if k not in lab_values
    }
    assert shipped["password"] == PLACEHOLDER_PASSWORD
    assert running["password"] != PLACEHOLDER_PASSWORD
    assert running["listen-port"] == os.environ["ROBOCALL_LAB_ESL"].split(":")[1]
    assert running["listen-ip"] == "127.0.0.1"
    assert running["apply-inbound-acl"] == "loopback.auto"


def test_every_module_of_the_post_load_list_is_running(switch: LabSwitch) -> None:
    # Given the modules freeswitch-conf asks for
    shipped = repo_xml("autoload_configs/post_load_modules.conf.xml")
    modules = [load.get("module", "") for load in shipped.iter("load")]
    assert "mod_event_socket" in modules and "mod_sofia" in modules
    # When FreeSWITCH is asked about each / Then each one is loaded
    missing = [m for m in modules if switch.api(f"module_exists {m}").strip() != "true"]
    assert missing == []


def test_robocall_profile_is_loaded_as_shipped_and_running(switch: LabSwitch) -> None:
    # Given the shipped profile, with $${...} resolved as FreeSWITCH's preprocessor does
    shipped = repo_xml("sip_profiles/robocall.xml")
    expected = {k: expand_globals(switch, v) for k, v in params(shipped.find("settings")).items()}
    # When FreeSWITCH is asked for the sofia configuration it loaded
    sofia = loaded(switch, "configuration", "configuration", "sofia.conf")
    profile = sofia.find(".//profiles/profile[@name='robocall']")
    assert profile is not None, "profile robocall is not in the loaded sofia.conf"
    # Then the robocall profile holds exactly the shipped settings (a second lab instance moves
    # its port), and it is running on the port it loaded
    running = params(profile.find("settings"))
    assert {k: v for k, v in running.items() if k != "sip-port"} == {
        k: v for k, v in expected.items() if k != "sip-port"
    }
    status = switch.api("sofia status profile robocall")
    assert re.search(rf"^URL\s+sip:mod_sofia@\S+:{running['sip-port']}\b", status, re.M), status
    assert re.search(r"^Context\s+robocall-inbound$", status, re.M), status
    assert re.search(r"^DTMF-MODE\s+rfc2833$", status, re.M), status
    assert re.search(r"^\s*robocall\s+profile\s+\S+\s+RUNNING", switch.api("sofia status"), re.M)


def test_the_lab_gateway_is_the_template_filled_in(switch: LabSwitch) -> None:
    # Given the gateway template, whose <gateway> is commented out
    template = (CONF_DIR / "sip_profiles/robocall/trunk.xml").read_text()
    commented = re.search(r"<!--\s*(<gateway .*?</gateway>)\s*-->", template, re.S)
    assert commented is not None
    shipped_gateway = ET.fromstring(commented.group(1))
    # When FreeSWITCH is asked for the gateway the lab filled in
    sofia = loaded(switch, "configuration", "configuration", "sofia.conf")
    running = sofia.find(".//profile[@name='robocall']/gateways/gateway")
    assert running is not None, "the lab has no gateway in the robocall profile"
    # Then it has the template's name and parameters, with values filled in, and it is up
    assert running.get("name") == shipped_gateway.get("name") == Settings().gateway
    assert set(params(running)) == set(params(shipped_gateway))
    assert "FILL-IN" not in params(running).values()
    status = switch.api(f"sofia status gateway {Settings().gateway}")
    assert re.search(r"^Status\s+UP$", status, re.M), status


def test_extension_context_is_loaded_as_shipped(switch: LabSwitch) -> None:
    # Given the shipped dialplan contexts
    for context in repo_xml("dialplan/robocall.xml").iter("context"):
        # When FreeSWITCH is asked for the context it loaded
        running = loaded(switch, "dialplan", "context", context.get("name", ""))
        # Then every action is the shipped one, with $${...} resolved
        shipped_actions = [
            (a.get("application"), expand_globals(switch, a.get("data", "")))
            for a in context.iter("action")
        ]
        running_actions = [
            (a.get("application"), a.get("data", "")) for a in running.iter("action")
        ]
        assert running_actions == shipped_actions


def test_robo_leg_through_the_gateway_is_found_by_fs_cli_and_gathers_digits(
    switch: LabSwitch,
) -> None:
    # Given a robo leg dialled the way robocall dials by default, to a callee that presses 1
    call_vars = lab_call_vars("gather")
    channel = switch.originate(call_vars, dial(PRESSES_1_EVERY_1_5_S))
    parked = answered_and_parked(switch, channel)
    assert parked["Event-Name"] == "CHANNEL_PARK", parked.get("Hangup-Cause")
    # When a PBX admin looks for it the ways freeswitch-conf/README.md tells them
    like = listed_channels(switch, call_vars["accountcode"])
    dump = json.loads(switch.api(f"uuid_dump {channel} json"))
    # Then the organization's account code finds exactly this channel, and its dump names the
    # request and the call, the profile and the gateway
    assert [row["uuid"] for row in like] == [channel]
    assert dump["variable_robocall_call_id"] == call_vars["robocall_call_id"]
    assert dump["variable_robocall_request_id"] == call_vars["robocall_request_id"]
    assert dump["variable_accountcode"] == call_vars["accountcode"]
    assert dump["variable_sofia_profile_name"] == "robocall"
    assert dump["variable_sip_gateway_name"] == Settings().gateway

    # When a gather runs on it / Then the callee's RFC 2833 digit arrives through the profile
    gather = switch.sendmsg_execute(
        channel,
        "play_and_get_digits",
        "1 1 3 4000 # silence_stream://500 silence_stream://250 got ^[0-9]$ 2000",
    )
    assert completed(switch, gather).get("variable_got") == "1"

    # When the admin ends the request's calls by its channel variable / Then this leg hangs up
    hupall = switch.api(
        f"hupall NORMAL_CLEARING robocall_request_id {call_vars['robocall_request_id']}"
    )
    assert hupall.startswith("+OK"), hupall
    assert hung_up(switch, channel)["Hangup-Cause"] == "NORMAL_CLEARING"


def test_extension_transfer_through_robocall_extensions_lasts_until_the_extension_hangs_up(
    switch: LabSwitch,
) -> None:
    # Given an answered robo leg
    channel = switch.originate(lab_call_vars("ext"), dial(STAYS_UP))
    assert answered_and_parked(switch, channel)["Event-Name"] == "CHANNEL_PARK"
    # When it is bridged with the loopback extension template to an extension that answers
    # and hangs up after a few seconds
    target = "loopback/{ext}/robocall-extensions".format(ext=LAB_EXTENSIONS["answers"])
    bridge = switch.sendmsg_execute(channel, "bridge", "{originate_timeout=5}" + target)
    result = completed(switch, bridge)
    # Then the bridge succeeded and ended only after the extension's side had hung up (the
    # dialplan keeps mod_loopback from bowing out), and the robo leg is back in park
    assert result.get("variable_originate_disposition") == "SUCCESS"
    assert result.get("variable_bridge_channel", "").startswith("loopback/")
    order = [
        (e.get("Event-Name"), e.get("Channel-Name", ""), e.get("Application-UUID"))
        for e in switch.event_log
    ]
    inner_leg_gone = order.index(
        ("CHANNEL_HANGUP_COMPLETE", f"loopback/{LAB_EXTENSIONS['answers']}-b", None)
    )
    bridge_done = [i for i, (_, _, app) in enumerate(order) if app == bridge]
    assert inner_leg_gone < bridge_done[0]
    assert switch.api(f"uuid_exists {channel}").strip() == "true"
    switch.api(f"uuid_kill {channel}")
    hung_up(switch, channel)


def test_busy_extension_through_robocall_extensions_reports_user_busy(switch: LabSwitch) -> None:
    # Given an answered robo leg, with continue_on_fail so a failed transfer leaves it up
    channel = switch.originate(
        {**lab_call_vars("busy"), "continue_on_fail": "true"}, dial(STAYS_UP)
    )
    assert answered_and_parked(switch, channel)["Event-Name"] == "CHANNEL_PARK"
    # When it is bridged with the loopback extension template to a busy extension
    target = "loopback/{ext}/robocall-extensions".format(ext=LAB_EXTENSIONS["busy"])
    result = completed(switch, switch.sendmsg_execute(channel, "bridge", target))
    # Then the robo leg sees the extension's cause, as with a direct bridge, and is still up
    assert result.get("variable_originate_disposition") == "USER_BUSY"
    assert result.get("variable_DIALSTATUS") == "BUSY"
    assert switch.api(f"uuid_exists {channel}").strip() == "true"
    switch.api(f"uuid_kill {channel}")
    hung_up(switch, channel)


def test_calls_that_arrive_on_the_robocall_profile_are_not_answered(switch: LabSwitch) -> None:
    # Given a call placed INTO the robocall profile (as a trunk or a scanner would), on the port
    # the profile loaded
    sofia = loaded(switch, "configuration", "configuration", "sofia.conf")
    profile = sofia.find(".//profiles/profile[@name='robocall']/settings")
    assert profile is not None
    address = f"127.0.0.1:{params(profile)['sip-port']}"
    channel = switch.originate(lab_call_vars("inbound"), f"sofia/internal/1000@{address}")
    # When it ends / Then it was never answered: the profile challenged the INVITE (auth-calls)
    # and the caller, having no credentials, gave up (FreeSWITCH's cause for that)
    ended = answered_and_parked(switch, channel)
    assert ended["Event-Name"] == "CHANNEL_HANGUP_COMPLETE"
    assert ended.get("variable_endpoint_disposition") != "ANSWER"
    assert ended.get("Hangup-Cause") == "MANDATORY_IE_MISSING"
