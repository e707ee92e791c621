"""Lab fixtures: a real FreeSWITCH (ROBOCALL_LAB_ESL=host:port:password), its scripted callees
and SIPp callees.

The switch is one configured by scripts/lab_configure.py (docs/lab.md). Its scripted callees, the
SIP profile ``lab`` of tests/lab/freeswitch/, are at ROBOCALL_LAB_CALLEES (host:port, default
127.0.0.1:5090, the first lab instance's). Without ROBOCALL_LAB_ESL every lab test is skipped.
With it set, an unreachable switch FAILS the tests: a configured lab that silently skips proves
nothing.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import gevent
import pytest

from robocall.esl.client import EslClient

SIPP_DIR = Path(__file__).resolve().parent / "sipp"


DEFAULT_CALLEES = "127.0.0.1:5090"


@dataclass(frozen=True)
class LabSwitch:
    host: str
    port: int
    password: str
    callees: str = DEFAULT_CALLEES  # host:port of the scripted callees' SIP profile

    @property
    def dial_template(self) -> str:
        """robocall's dial template for the scripted callees (a robo leg on profile internal)."""
        return f"sofia/internal/{{number}}@{self.callees}"

    def dial(self, ending: str) -> str:
        """The dial string of the scripted callee whose number ends in ``ending``."""
        return self.dial_template.format(number=f"+65800000{ending}")


@pytest.fixture(scope="session")
def lab_switch() -> LabSwitch:
    """The configured lab FreeSWITCH, checked reachable; skip only when none is configured."""
    setting = os.environ.get("ROBOCALL_LAB_ESL", "")
    if not setting:
        pytest.skip("no lab FreeSWITCH: set ROBOCALL_LAB_ESL=host:port:password")
    host, port_text, password = setting.split(":", 2)
    callees = os.environ.get("ROBOCALL_LAB_CALLEES", "") or DEFAULT_CALLEES
    switch = LabSwitch(host, int(port_text), password, callees)
    try:
        socket.create_connection((switch.host, switch.port), timeout=3).close()
    except OSError as err:
        pytest.fail(
            f"ROBOCALL_LAB_ESL={host}:{port_text} is set but unreachable: {err}", pytrace=False
        )
    return switch


@pytest.fixture
def lab_client(lab_switch: LabSwitch) -> Iterator[EslClient]:
    """An EslClient connected to the lab switch."""
    client = EslClient(lab_switch.host, lab_switch.port, lab_switch.password, command_timeout=10)
    client.connect()
    yield client
    client.close()


def _free_udp_port(low: int = 0, span: int = 1) -> int:
    """A UDP port (and ``span - 1`` after it) nobody is bound to on 127.0.0.1."""
    for candidate in range(low, low + 5000, 4) if low else [0] * 50:
        probes = []
        try:
            first = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            probes.append(first)
            first.bind(("127.0.0.1", candidate))
            port = first.getsockname()[1]
            for offset in range(1, span):
                extra = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                probes.append(extra)
                extra.bind(("127.0.0.1", port + offset))
            return port
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
    raise RuntimeError("no free UDP port on 127.0.0.1")


def _wait_bound(port: int, process: subprocess.Popen[bytes]) -> None:
    with gevent.Timeout(10, RuntimeError(f"SIPp did not bind 127.0.0.1:{port}")):
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"SIPp exited with {process.returncode}")
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    return  # SIPp holds it
            gevent.sleep(0.05)


@pytest.fixture
def sipp(lab_switch: LabSwitch) -> Iterator[Callable[[str], int]]:
    """Start a SIPp UAS scenario on free loopback ports; returns its SIP port. Stopped by PID."""
    started: list[subprocess.Popen[bytes]] = []

    def start(scenario: str) -> int:
        sip_port = _free_udp_port()
        media_port = _free_udp_port(low=40000, span=4)
        control_port = _free_udp_port()
        process = subprocess.Popen(
            [
                "sipp",
                "-sf", str(SIPP_DIR / scenario),
                "-i", "127.0.0.1", "-p", str(sip_port),
                "-mi", "127.0.0.1", "-mp", str(media_port),
                "-ci", "127.0.0.1", "-cp", str(control_port),
                "-nostdin", "-timeout", "120s",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        started.append(process)
        _wait_bound(sip_port, process)
        return sip_port

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def lab_dial(lab_switch: LabSwitch) -> Callable[[str], str]:
    """The scripted callees' dial string for a behaviour (the last two digits)."""
    return lab_switch.dial
