#!/usr/bin/env python3
"""Configure an installed FreeSWITCH as a robocall lab switch, from this repository's files only.

Takes the install's stock configuration (never modified) and writes a lab instance into
``--dir``: its own conf, log, db, run, storage, cache, recordings and temp directories, so several
instances can run side by side on one machine from one install (``--instance 2`` moves every
port). What the instance gets (docs/lab.md explains each point):

- loopback only: every address 127.0.0.1, the stock public STUN lookups replaced, the stock
  ``external`` profiles, gateways and WebSocket listeners removed; start it with ``-nonat``;
- robocall's drop-in ``freeswitch-conf/`` as its README says to merge it: the event socket with a
  password, the ``robocall`` profile with its gateway template filled in (pointing at the lab's
  callees), the dialplan, the post-load modules;
- the scripted callees of ``tests/lab/freeswitch/``: SIP profile ``lab`` and dialplan context
  ``lab-callees``, directory users 1000-1002 for ``Ext:`` transfers, the lab's module list;
- capacity for the load benchmark: ``sessions-per-second``, ``max-sessions`` and the RTP port
  range in ``switch.conf.xml``; the core log level lowered to ``notice``.

    python3 scripts/lab_configure.py --prefix /usr/local/freeswitch --dir /tmp/fslab1
    python3 scripts/lab_configure.py --prefix /usr/local/freeswitch --dir /tmp/fslab2 --instance 2

It prints the command lines that start and stop the instance and writes ``<dir>/lab.env`` with
the variables the lab tier reads (``make lab-test``). Re-running it rewrites the instance's conf
from the stock one; logs and databases stay.
"""

from __future__ import annotations

import argparse
import re
import secrets
import shlex
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

ROOT = Path(__file__).resolve().parent.parent
ROBOCALL_CONF = ROOT / "freeswitch-conf"
LAB_CONF = ROOT / "tests" / "lab" / "freeswitch"
MARKER = ".robocall-lab"  # in <dir>/conf: a conf this script wrote and may replace
# Each is a command-line flag of FreeSWITCH's (-conf, -log...): without -certs, for one, it writes
# its TLS certificates into the install's own conf directory.
INSTANCE_DIRS = ("conf", "log", "db", "run", "storage", "cache", "recordings", "temp", "certs")

# Stock files that listen off loopback, ask the internet, or define gateways.
STOCK_FILES_REMOVED = (
    "sip_profiles/external.xml",
    "sip_profiles/external",
    "sip_profiles/external-ipv6.xml",
    "sip_profiles/external-ipv6",
    "sip_profiles/internal-ipv6.xml",
    "directory/default/example.com.xml",  # a gateway
    # replaced by tests/lab/freeswitch/directory/lab-extensions.xml
    "directory/default/1000.xml",
    "directory/default/1001.xml",
    "directory/default/1002.xml",
    # certificates a FreeSWITCH started without -certs generated there: not configuration
    "tls",
)
# The lab callees 10-13 speak through mod_flite, which robocall itself lists as optional.
LAB_ONLY_MODULES = ("mod_flite",)


@dataclass(frozen=True)
class Ports:
    """Every port one lab instance binds, all on 127.0.0.1; instance n moves each by n-1 steps."""

    esl: int
    internal_sip: int
    robocall_sip: int
    lab_sip: int
    rtp_start: int
    rtp_end: int

    @classmethod
    def for_instance(cls, instance: int) -> Ports:
        if instance < 1:
            raise ValueError("instances are numbered from 1")
        step = instance - 1
        rtp_start = 16384 + 8000 * step
        return cls(
            esl=8021 + step,
            internal_sip=5080 + 100 * step,
            robocall_sip=5064 + 100 * step,
            lab_sip=5090 + 100 * step,
            rtp_start=rtp_start,
            # FreeSWITCH takes RTP ports in pairs and rounds an odd end down (with a warning).
            rtp_end=rtp_start + 7998,
        )


# --- text edits that keep the stock files as FreeSWITCH reads them -----------------------------
#
# FreeSWITCH's preprocessor reads X-PRE-PROCESS lines before any XML parsing, even inside XML
# comments, and does not decode entities in them: the files are edited as text, never
# re-serialised by an XML library.

COMMENT = re.compile(r"<!--.*?-->", re.S)


def _outside_comments(text: str, matches: Iterable[re.Match[str]]) -> list[re.Match[str]]:
    spans = [m.span() for m in COMMENT.finditer(text)]
    return [m for m in matches if not any(a <= m.start() < b for a, b in spans)]


def set_var(text: str, name: str, value: str) -> str:
    """vars.xml: every ``set``/``stun-set`` of ``name`` becomes ``set name=value``, or one is
    added at the top when there is none (earlier than every stock line that reads it)."""
    line = f'<X-PRE-PROCESS cmd="set" data="{name}={value}"/>'
    pattern = re.compile(
        rf'<X-PRE-PROCESS\s+cmd="(?:set|stun-set)"\s+data="{re.escape(name)}=[^"]*"\s*/>'
    )
    if pattern.search(text):
        return pattern.sub(lambda _: line, text)
    opening = re.search(r"<include>\n?", text)
    if opening is None:
        raise ValueError("vars.xml has no <include>")
    return text[: opening.end()] + f"  {line}\n" + text[opening.end() :]


def _params(text: str, name: str) -> list[re.Match[str]]:
    pattern = re.compile(rf'<param\s+name="{re.escape(name)}"\s+value="[^"]*"\s*/>')
    return _outside_comments(text, pattern.finditer(text))


def set_param(text: str, name: str, value: str) -> str:
    """A ``<param>`` outside comments set to ``value``; added before ``</settings>`` if absent."""
    line = f'<param name="{name}" value="{value}"/>'
    found = _params(text, name)
    if not found:
        end = text.rindex("</settings>")
        return text[:end] + f"  {line}\n  " + text[end:]
    for match in reversed(found):
        text = text[: match.start()] + line + text[match.end() :]
    return text


def drop_param(text: str, name: str) -> str:
    """Every ``<param name=...>`` of ``name`` outside comments removed."""
    for match in reversed(_params(text, name)):
        text = text[: match.start()] + text[match.end() :]
    return text


def fill_gateway(template: str, values: dict[str, str]) -> str:
    """freeswitch-conf's trunk.xml with its commented-out ``<gateway>`` made live and the
    named params given lab values (every other param kept as shipped)."""
    commented = re.search(r"<!--\s*(<gateway .*?</gateway>)\s*-->", template, re.S)
    if commented is None:
        raise ValueError("trunk.xml has no commented-out <gateway>")
    gateway = commented.group(1)
    for name, value in values.items():
        if not _params(gateway, name):
            raise ValueError(f"trunk.xml's gateway has no param {name!r}")
        gateway = set_param(gateway, name, value)
    if "FILL-IN" in gateway or "sip.trunk.invalid" in gateway:
        raise ValueError("trunk.xml has a placeholder the lab does not fill in")
    head = (
        "<!-- robocall lab: freeswitch-conf/sip_profiles/robocall/trunk.xml filled in by\n"
        "     scripts/lab_configure.py; the gateway leads to the lab's scripted callees. -->\n"
    )
    return head + f"<include>\n  {gateway}\n</include>\n"


def modules_listed(path: Path) -> list[str]:
    return [load.get("module", "") for load in ElementTree.parse(path).getroot().iter("load")]


# --- the instance ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lab:
    stock_conf: Path
    mod_dir: Path
    binary: Path
    instance_dir: Path
    ports: Ports
    password: str
    sessions_per_second: int
    max_sessions: int

    def path(self, name: str) -> Path:
        return self.instance_dir / name

    @property
    def conf(self) -> Path:
        return self.path("conf")

    def start_command(self) -> list[str]:
        dirs = [arg for name in INSTANCE_DIRS for arg in (f"-{name}", str(self.path(name)))]
        return [str(self.binary), "-nonat", "-nc", *dirs]

    def pid_file(self) -> Path:
        return self.path("run") / "freeswitch.pid"

    def env(self) -> dict[str, str]:
        return {
            "ROBOCALL_LAB_ESL": f"127.0.0.1:{self.ports.esl}:{self.password}",
            "ROBOCALL_LAB_CALLEES": f"127.0.0.1:{self.ports.lab_sip}",
        }


def check_install(lab: Lab) -> None:
    problems = []
    if not lab.binary.is_file():
        problems.append(f"no FreeSWITCH binary at {lab.binary}")
    if not (lab.stock_conf / "freeswitch.xml").is_file():
        problems.append(f"no stock configuration (freeswitch.xml) in {lab.stock_conf}")
    needed = [
        *modules_listed(LAB_CONF / "autoload_configs/modules.conf.xml"),
        *modules_listed(ROBOCALL_CONF / "autoload_configs/post_load_modules.conf.xml"),
        *LAB_ONLY_MODULES,
    ]
    missing = sorted({m for m in needed if not (lab.mod_dir / f"{m}.so").is_file()})
    if missing:
        problems.append(f"modules not installed in {lab.mod_dir}: {', '.join(missing)}")
    if problems:
        raise SystemExit("lab_configure: " + "; ".join(problems))


def fresh_conf(lab: Lab) -> None:
    """<dir>/conf: a new copy of the stock configuration (a conf this script wrote is replaced;
    anything else there is refused)."""
    if lab.conf.exists():
        if not (lab.conf / MARKER).is_file():
            raise SystemExit(f"lab_configure: {lab.conf} exists and was not written by this script")
        shutil.rmtree(lab.conf)
    for name in INSTANCE_DIRS[1:]:
        lab.path(name).mkdir(parents=True, exist_ok=True)
    shutil.copytree(lab.stock_conf, lab.conf, symlinks=True)
    (lab.conf / MARKER).write_text(f"written by {Path(__file__).name} from {lab.stock_conf}\n")
    for relative in STOCK_FILES_REMOVED:
        target = lab.conf / relative
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def set_vars_in(path: Path, values: dict[str, str]) -> None:
    text = path.read_text()
    for name, value in values.items():
        text = set_var(text, name, value)
    path.write_text(text)


def set_params_in(path: Path, values: dict[str, str], drop: Iterable[str] = ()) -> None:
    text = path.read_text()
    for name, value in values.items():
        text = set_param(text, name, value)
    for name in drop:
        text = drop_param(text, name)
    path.write_text(text)


def loopback_only(lab: Lab) -> None:
    ports = lab.ports
    set_vars_in(
        lab.conf / "vars.xml",
        {
            # Added first, before the stock lines that derive domain etc. from it (otherwise
            # FreeSWITCH detects it: the host's first non-loopback address).
            "local_ip_v4": "127.0.0.1",
            # The stock lines are stun-set lookups at a public STUN server.
            "external_rtp_ip": "127.0.0.1",
            "external_sip_ip": "127.0.0.1",
            "bind_server_ip": "127.0.0.1",
            "default_password": secrets.token_hex(12),  # the directory users' SIP password
            "internal_sip_port": str(ports.internal_sip),
            "internal_tls_port": str(ports.internal_sip + 1),
            "lab_sip_port": str(ports.lab_sip),
        },
    )
    # The stock WebSocket listeners bind every interface (":5066", ":7443").
    set_params_in(lab.conf / "sip_profiles/internal.xml", {}, drop=("ws-binding", "wss-binding"))


def robocall_drop_in(lab: Lab) -> None:
    """freeswitch-conf/ merged as its README says, with the lab's values where it asks for them."""
    conf = lab.conf
    (conf / "sip_profiles/robocall").mkdir(exist_ok=True)
    for relative in (
        "sip_profiles/robocall.xml",
        "dialplan/robocall.xml",
        "autoload_configs/post_load_modules.conf.xml",
        "autoload_configs/event_socket.conf.xml",
    ):
        shutil.copyfile(ROBOCALL_CONF / relative, conf / relative)
    set_params_in(
        conf / "autoload_configs/event_socket.conf.xml",
        {"password": lab.password, "listen-port": str(lab.ports.esl)},
    )
    if lab.ports.robocall_sip != Ports.for_instance(1).robocall_sip:
        set_params_in(conf / "sip_profiles/robocall.xml", {"sip-port": str(lab.ports.robocall_sip)})
    callees = f"127.0.0.1:{lab.ports.lab_sip}"
    trunk = fill_gateway(
        (ROBOCALL_CONF / "sip_profiles/robocall/trunk.xml").read_text(),
        {
            "proxy": callees,
            "realm": callees,
            "from-domain": "127.0.0.1",
            "username": "robocall-lab",
            "password": secrets.token_hex(8),
        },
    )
    (conf / "sip_profiles/robocall/trunk.xml").write_text(trunk)


def scripted_callees(lab: Lab) -> None:
    conf = lab.conf
    shutil.copyfile(LAB_CONF / "sip_profiles/lab.xml", conf / "sip_profiles/lab.xml")
    shutil.copyfile(LAB_CONF / "dialplan/lab-callees.xml", conf / "dialplan/lab-callees.xml")
    shutil.copyfile(
        LAB_CONF / "directory/lab-extensions.xml", conf / "directory/default/lab-extensions.xml"
    )
    shutil.copyfile(
        LAB_CONF / "autoload_configs/modules.conf.xml", conf / "autoload_configs/modules.conf.xml"
    )


def capacity(lab: Lab) -> None:
    set_params_in(
        lab.conf / "autoload_configs/switch.conf.xml",
        {
            # Each lab call is two sessions (robo leg + scripted callee leg), three while
            # transferred; both limits count them all.
            "sessions-per-second": str(lab.sessions_per_second),
            "max-sessions": str(lab.max_sessions),
            # Two RTP ports per leg; each instance has its own range.
            "rtp-start-port": str(lab.ports.rtp_start),
            "rtp-end-port": str(lab.ports.rtp_end),
            # Debug and info lines cost the switch CPU at load; `fsctl loglevel debug` raises it.
            "loglevel": "notice",
            "dump-cores": "no",
        },
    )


def configure(lab: Lab) -> None:
    check_install(lab)
    fresh_conf(lab)
    loopback_only(lab)
    robocall_drop_in(lab)
    scripted_callees(lab)
    capacity(lab)
    exports = [f"export {key}={shlex.quote(value)}\n" for key, value in lab.env().items()]
    lab.path("lab.env").write_text("".join(exports))


# Where an install keeps its stock configuration and modules, under its prefix: a build from
# source configured with --prefix (FHS, as packages are), or one configured without it, which
# installs into /usr/local/freeswitch with FreeSWITCH's own layout (conf/, mod/).
LAYOUTS = (("etc/freeswitch", "lib/freeswitch/mod"), ("conf", "mod"))


def _layout(prefix: Path) -> tuple[str, str]:
    for conf, mods in LAYOUTS:
        if (prefix / conf / "freeswitch.xml").is_file():
            return conf, mods
    return LAYOUTS[0]


def parse_args(argv: list[str]) -> Lab:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefix", type=Path, required=True, help="FreeSWITCH's install prefix")
    parser.add_argument("--dir", type=Path, required=True, help="the lab instance's directory")
    parser.add_argument("--instance", type=int, default=1, help="1, 2, ...: the ports")
    parser.add_argument("--password", default="", help="event socket password (default: random)")
    parser.add_argument("--stock-conf", type=Path,
                        help="default: PREFIX/etc/freeswitch, or PREFIX/conf if that has it")
    parser.add_argument("--mod-dir", type=Path,
                        help="default: PREFIX/lib/freeswitch/mod, or PREFIX/mod beside PREFIX/conf")
    parser.add_argument("--sessions-per-second", type=int, default=200)
    parser.add_argument("--max-sessions", type=int, default=4000)
    args = parser.parse_args(argv)
    prefix = args.prefix.resolve()
    layout = _layout(prefix)
    return Lab(
        stock_conf=(args.stock_conf or prefix / layout[0]).resolve(),
        mod_dir=(args.mod_dir or prefix / layout[1]).resolve(),
        binary=prefix / "bin/freeswitch",
        instance_dir=args.dir.resolve(),
        ports=Ports.for_instance(args.instance),
        password=args.password or secrets.token_hex(12),
        sessions_per_second=args.sessions_per_second,
        max_sessions=args.max_sessions,
    )


def main(argv: list[str]) -> None:
    lab = parse_args(argv)
    configure(lab)
    ports = lab.ports
    print(f"configured {lab.conf}")
    print(f"start: {shlex.join(lab.start_command())}")
    print(f"stop:  kill $(cat {lab.pid_file()})")
    print(
        f"ports: ESL 127.0.0.1:{ports.esl}, SIP internal {ports.internal_sip}, "
        f"robocall {ports.robocall_sip}, lab callees {ports.lab_sip}, "
        f"RTP {ports.rtp_start}-{ports.rtp_end}"
    )
    print(f"env:   . {lab.path('lab.env')}")
    for key, value in lab.env().items():
        print(f"       {key}={value}")


if __name__ == "__main__":
    main(sys.argv[1:])
