"""scripts/lab_configure.py on a miniature stock FreeSWITCH configuration.

The real stock configuration belongs to FreeSWITCH and is not in this repository; these files
hold the lines the script edits, written the way the stock files write them. The lab tier
(tests/lab, docs/lab.md) runs the script's output on a real switch.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]

STOCK_VARS = """<include>
  <!-- NOTICE: X-PRE-PROCESS lines run even inside comments. -->
  <X-PRE-PROCESS cmd="set" data="default_password=1234"/>
  <X-PRE-PROCESS cmd="set" data="domain=$${local_ip_v4}"/>
  <X-PRE-PROCESS cmd="set" data="bong-ring=v=-7;%(100,0,941.0,1477.0);v=-7;>=2;+=.1;"/>
  <X-PRE-PROCESS cmd="set" data="bind_server_ip=auto"/>
  <X-PRE-PROCESS cmd="stun-set" data="external_rtp_ip=stun:stun.freeswitch.org"/>
  <X-PRE-PROCESS cmd="stun-set" data="external_sip_ip=stun:stun.freeswitch.org"/>
  <X-PRE-PROCESS cmd="set" data="internal_sip_port=5060"/>
  <X-PRE-PROCESS cmd="set" data="internal_tls_port=5061"/>
</include>
"""
STOCK_SWITCH = """<configuration name="switch.conf" description="Core Configuration">
  <settings>
    <param name="max-sessions" value="1000"/>
    <param name="sessions-per-second" value="30"/>
    <param name="loglevel" value="debug"/>
    <!-- <param name="rtp-start-port" value="16384"/> -->
    <param name="dump-cores" value="yes"/>
  </settings>
</configuration>
"""
STOCK_INTERNAL = """<profile name="internal">
  <settings>
    <param name="sip-port" value="$${internal_sip_port}"/>
    <param name="ws-binding"  value=":5066"/>
    <param name="wss-binding" value=":7443"/>
    <!-- <param name="ws-binding" value=":5066"/> -->
  </settings>
</profile>
"""
STOCK_FILES = {
    "freeswitch.xml": "<document type='freeswitch/xml'/>\n",
    "vars.xml": STOCK_VARS,
    "autoload_configs/switch.conf.xml": STOCK_SWITCH,
    "autoload_configs/modules.conf.xml": "<configuration name='modules.conf'/>\n",
    "autoload_configs/event_socket.conf.xml": "<configuration name='event_socket.conf'/>\n",
    "autoload_configs/post_load_modules.conf.xml": "<configuration/>\n",
    "sip_profiles/internal.xml": STOCK_INTERNAL,
    "sip_profiles/external.xml": "<profile name='external'/>\n",
    "sip_profiles/external/example.xml": "<include><gateway name='example.com'/></include>\n",
    "sip_profiles/internal-ipv6.xml": "<profile name='internal-ipv6'/>\n",
    "dialplan/default.xml": "<include/>\n",
    "directory/default/1000.xml": "<include><user id='1000'/></include>\n",
    "directory/default/1003.xml": "<include><user id='1003'/></include>\n",
    "directory/default/example.com.xml": "<include><user id='example.com'/></include>\n",
    "tls/wss.pem": "a certificate a FreeSWITCH started without -certs wrote here\n",
}
MODULES = [
    "mod_console", "mod_logfile", "mod_db", "mod_hash", "mod_expr", "mod_spandsp", "mod_say_en",
    "mod_event_socket", "mod_sofia", "mod_commands", "mod_dptools", "mod_dialplan_xml",
    "mod_sndfile", "mod_native_file", "mod_tone_stream", "mod_http_cache", "mod_loopback",
    "mod_flite",
]  # fmt: skip


def load_script() -> ModuleType:
    path = ROOT / "scripts/lab_configure.py"
    spec = importlib.util.spec_from_file_location("lab_configure", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["lab_configure"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


lab_configure = load_script()


@pytest.fixture
def prefix(tmp_path: Path) -> Path:
    """A FreeSWITCH install prefix: a binary, the modules the lab needs, the stock conf."""
    root = tmp_path / "install"
    for relative, text in STOCK_FILES.items():
        path = root / "etc/freeswitch" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "bin").mkdir()
    (root / "bin/freeswitch").write_text("")
    (root / "lib/freeswitch/mod").mkdir(parents=True)
    for module in MODULES:
        (root / f"lib/freeswitch/mod/{module}.so").write_text("")
    return root


def configure(prefix: Path, instance_dir: Path, *extra: str) -> None:
    lab_configure.main(["--prefix", str(prefix), "--dir", str(instance_dir), *extra])


def preprocessor_sets(vars_xml: str) -> dict[str, str]:
    """What FreeSWITCH's preprocessor would set, in order (the last set of a name wins)."""
    found = re.findall(r'<X-PRE-PROCESS cmd="([\w-]+)" data="([^=]+)=([^"]*)"', vars_xml)
    assert all(cmd == "set" for cmd, _, _ in found), found
    return {name: value for _, name, value in found}


def test_the_first_instance_is_loopback_only_on_the_default_ports(
    prefix: Path, tmp_path: Path
) -> None:
    # Given a stock install / When the first lab instance is configured
    configure(prefix, tmp_path / "lab1", "--password", "s3cret")
    conf = tmp_path / "lab1/conf"

    # Then no public STUN lookup is left, every address is loopback, the ports are the first's
    text = (conf / "vars.xml").read_text()
    assert "stun" not in text
    sets = preprocessor_sets(text)
    assert sets["local_ip_v4"] == "127.0.0.1"
    assert text.index("local_ip_v4=") < text.index("domain=$${local_ip_v4}")
    assert sets["external_rtp_ip"] == sets["external_sip_ip"] == "127.0.0.1"
    assert sets["internal_sip_port"] == "5080"
    assert sets["lab_sip_port"] == "5090"
    assert sets["default_password"] != "1234"
    # and lines the script does not own are byte for byte the stock ones
    assert "v=-7;>=2;+=.1;" in text

    # and the stock external profiles, gateways and WebSocket listeners are gone
    assert sorted(p.name for p in (conf / "sip_profiles").iterdir()) == [
        "internal.xml", "lab.xml", "robocall", "robocall.xml",
    ]  # fmt: skip
    internal = (conf / "sip_profiles/internal.xml").read_text()
    live = re.sub(r"<!--.*?-->", "", internal, flags=re.S)
    assert re.findall(r'<param name="wss?-binding"', live) == []
    assert '<param name="sip-port" value="$${internal_sip_port}"/>' in live
    assert not (conf / "directory/default/example.com.xml").exists()
    assert not (conf / "tls").exists()

    # and the event socket is robocall's, with the password and the first instance's port
    esl = (conf / "autoload_configs/event_socket.conf.xml").read_text()
    assert '<param name="password" value="s3cret"/>' in esl
    assert '<param name="listen-port" value="8021"/>' in esl
    assert '<param name="listen-ip" value="127.0.0.1"/>' in esl
    assert (tmp_path / "lab1/lab.env").read_text() == (
        "export ROBOCALL_LAB_ESL=127.0.0.1:8021:s3cret\n"
        "export ROBOCALL_LAB_CALLEES=127.0.0.1:5090\n"
    )


def test_the_gateway_template_is_filled_in_toward_the_scripted_callees(
    prefix: Path, tmp_path: Path
) -> None:
    configure(prefix, tmp_path / "lab1")
    trunk = (tmp_path / "lab1/conf/sip_profiles/robocall/trunk.xml").read_text()
    assert "<!--" not in trunk.split("-->", 1)[1]  # only the header is a comment
    assert '<param name="proxy" value="127.0.0.1:5090"/>' in trunk
    assert "FILL-IN" not in trunk and "sip.trunk.invalid" not in trunk
    shipped = (ROOT / "freeswitch-conf/sip_profiles/robocall/trunk.xml").read_text()
    names = re.compile(r'<param name="([\w-]+)"')
    assert names.findall(trunk) == names.findall(shipped)


def test_the_lab_callees_directory_and_capacity_are_installed(
    prefix: Path, tmp_path: Path
) -> None:
    configure(prefix, tmp_path / "lab1", "--sessions-per-second", "250")
    conf = tmp_path / "lab1/conf"
    lab_files = ROOT / "tests/lab/freeswitch"
    assert (conf / "dialplan/lab-callees.xml").read_text() == (
        lab_files / "dialplan/lab-callees.xml"
    ).read_text()
    # users 1000-1002 are the lab's, the other stock users stay
    users = sorted(p.name for p in (conf / "directory/default").iterdir())
    assert users == ["1003.xml", "lab-extensions.xml"]
    switch = (conf / "autoload_configs/switch.conf.xml").read_text()
    assert '<param name="sessions-per-second" value="250"/>' in switch
    assert '<param name="max-sessions" value="4000"/>' in switch
    assert '<param name="loglevel" value="notice"/>' in switch
    # the commented-out stock line stays a comment; the live one is added to the settings
    assert '<!-- <param name="rtp-start-port" value="16384"/> -->' in switch
    assert re.search(r'\n\s*<param name="rtp-start-port" value="16384"/>\n', switch)
    # an even end: FreeSWITCH takes ports in pairs and would round an odd one down, warning
    assert switch.index('"rtp-end-port" value="24382"') < switch.index("</settings>")


def test_a_second_instance_moves_every_port(prefix: Path, tmp_path: Path) -> None:
    # Given a first instance / When a second is configured from the same install
    configure(prefix, tmp_path / "lab1")
    configure(prefix, tmp_path / "lab2", "--instance", "2", "--password", "two")
    conf = tmp_path / "lab2/conf"
    # Then none of its ports is the first's
    sets = preprocessor_sets((conf / "vars.xml").read_text())
    assert (sets["internal_sip_port"], sets["lab_sip_port"]) == ("5180", "5190")
    robocall = (conf / "sip_profiles/robocall.xml").read_text()
    assert '<param name="sip-port" value="5164"/>' in robocall
    esl = (conf / "autoload_configs/event_socket.conf.xml").read_text()
    assert '<param name="listen-port" value="8022"/>' in esl
    switch = (conf / "autoload_configs/switch.conf.xml").read_text()
    assert '<param name="rtp-start-port" value="24384"/>' in switch
    # and it has its own directories, named on its start command line
    start = lab_configure.parse_args(
        ["--prefix", str(prefix), "--dir", str(tmp_path / "lab2"), "--instance", "2"]
    ).start_command()
    for name in ("conf", "log", "db", "run", "certs"):
        assert start[start.index(f"-{name}") + 1] == str(tmp_path / "lab2" / name)
        assert (tmp_path / "lab2" / name).is_dir()
    assert "-nonat" in start


def test_reconfiguring_replaces_only_a_conf_the_script_wrote(prefix: Path, tmp_path: Path) -> None:
    configure(prefix, tmp_path / "lab1", "--password", "old")
    configure(prefix, tmp_path / "lab1", "--password", "new")
    esl = (tmp_path / "lab1/conf/autoload_configs/event_socket.conf.xml").read_text()
    assert '"password" value="new"' in esl
    foreign = tmp_path / "mine"
    (foreign / "conf").mkdir(parents=True)
    with pytest.raises(SystemExit, match="not written by this script"):
        configure(prefix, foreign)


def test_an_install_without_mod_flite_is_refused(prefix: Path, tmp_path: Path) -> None:
    (prefix / "lib/freeswitch/mod/mod_flite.so").unlink()
    with pytest.raises(SystemExit, match="mod_flite"):
        configure(prefix, tmp_path / "lab1")


def test_a_source_build_installed_without_a_prefix_is_found_in_its_own_layout(
    prefix: Path, tmp_path: Path
) -> None:
    # Given an install laid out as FreeSWITCH's configure does without --prefix
    # (/usr/local/freeswitch/conf and /mod)
    (prefix / "etc/freeswitch").rename(prefix / "conf")
    (prefix / "lib/freeswitch/mod").rename(prefix / "mod")
    # When configured with --prefix alone / Then its stock conf and its modules are used
    configure(prefix, tmp_path / "lab1")
    assert (tmp_path / "lab1/conf/freeswitch.xml").is_file()
    lab = lab_configure.parse_args(["--prefix", str(prefix), "--dir", str(tmp_path / "lab1")])
    assert (lab.stock_conf, lab.mod_dir) == (prefix / "conf", prefix / "mod")
