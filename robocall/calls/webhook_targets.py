"""Where a webhook may go: only to public addresses, unless the operator allows a network.

A ``callbackUrl`` is a tenant's text, and robocall posts to it from inside the operator's
network: left alone it would reach loopback services, private networks and the cloud's
metadata service (169.254.169.254) — server-side request forgery. So the URL's host is vetted
when the request is submitted and again before every delivery (a name's DNS answer can change
in between), and the delivery connects to an address that was vetted, never resolving the name
a second time.

A host is vetted by its addresses: an IP literal as the connection would read it (decimal,
octal and hexadecimal IPv4 forms included: ``2130706433``, ``0177.0.0.1`` and ``0x7f.1`` are
all 127.0.0.1), else every address its name resolves to. IPv4 addresses carried in IPv6 ones
(IPv4-mapped ``::ffff:a.b.c.d``, 6to4, NAT64's well-known prefix, Teredo) are judged as the
IPv4 address they carry. An address passes when it is globally routable and not multicast, or
when it lies in a network the operator allowed (``ROBOCALL_WEBHOOK_ALLOW_NETWORKS``, for
receivers on the operator's own network).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from robocall.errors import WebhookTargetRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# host, port -> the addresses (text) a connection to it could go to
Resolver = Callable[[str, int], Sequence[str]]

ALLOW_SETTING = "ROBOCALL_WEBHOOK_ALLOW_NETWORKS"
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# What inet_aton reads as an IPv4 address: 1 to 4 parts, each decimal, octal (leading 0) or
# hexadecimal (0x); a host made only of these characters is never a DNS name to look up.
_NUMERIC_IPV4 = re.compile(r"^(0[xX][0-9a-fA-F]*|[0-9]+)(\.(0[xX][0-9a-fA-F]*|[0-9]+)){0,3}$")


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to for a TCP connection (the process's resolver)."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in found))


def literal_address(host: str) -> IPAddress | None:
    """``host`` as the IP address a connection would read it as, or None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_IPV4.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None  # e.g. a part out of range: no address, and no name either
    return None


def carried_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries to an IPv4 host (mapped, 6to4, NAT64,
    Teredo's client); none for an IPv4 address or a plain IPv6 one."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    carried = [address.ipv4_mapped, address.sixtofour]
    if address in _NAT64:
        carried.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address.teredo is not None:
        carried.append(address.teredo[1])
    return [v4 for v4 in carried if v4 is not None]


def _kind(address: IPAddress) -> str | None:
    """What makes ``address`` inside (loopback, private...), or None if it is public."""
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if address.is_multicast:
        return "a multicast address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "not a public address"
    return None


@dataclass(frozen=True)
class TargetPolicy:
    """Which addresses a webhook may be sent to, and how names are resolved."""

    allowed_networks: tuple[IPNetwork, ...] = ()
    resolver: Resolver = system_resolver

    def vet(self, host: str, port: int) -> list[IPAddress]:
        """The addresses a delivery to ``host`` may connect to (every one of them checked).

        Raises WebhookTargetRefused when the host does not resolve, or when any address it
        is or resolves to is inside (a name with one private address among public ones is
        refused whole: DNS round-robin would pick that one some of the time)."""
        literal = literal_address(host)
        addresses = [literal] if literal is not None else self._resolve(host, port)
        for address in addresses:
            why = self._refusal(address)
            if why is not None:
                told = f"is {address}" if literal is not None else f"resolves to {address}"
                raise WebhookTargetRefused(
                    f"host {host} {told}, {why}; robocall posts only to public addresses "
                    f"(an operator can allow a network with {ALLOW_SETTING})"
                )
        return addresses

    def vet_url(self, url: str) -> list[IPAddress]:
        """:meth:`vet` for the host and port of an http(s) ``url`` (already checked in form)."""
        parts = urlsplit(url)
        default_port = 443 if parts.scheme.lower() == "https" else 80
        return self.vet(parts.hostname or "", parts.port or default_port)

    def _refusal(self, address: IPAddress) -> str | None:
        if self._allowed(address):
            return None
        carried = carried_ipv4(address)
        for v4 in carried:
            if not self._allowed(v4) and _kind(v4) is not None:
                return f"which carries {v4}, {_kind(v4)}"
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            return None  # judged as the IPv4 address it is
        return _kind(address)

    def _allowed(self, address: IPAddress) -> bool:
        return any(address in network for network in self.allowed_networks)

    def _resolve(self, host: str, port: int) -> list[IPAddress]:
        try:
            found = list(self.resolver(host, port))
        except (OSError, UnicodeError) as err:
            raise WebhookTargetRefused(f"host {host} does not resolve ({err})") from err
        addresses = _addresses(found)
        if not addresses:
            raise WebhookTargetRefused(f"host {host} does not resolve to an address")
        return addresses


def _addresses(texts: Iterable[str]) -> list[IPAddress]:
    addresses: list[IPAddress] = []
    for text in texts:
        try:
            addresses.append(ipaddress.ip_address(text.split("%", 1)[0]))
        except ValueError as err:
            raise WebhookTargetRefused(f"the resolver answered {text!r}, not an address") from err
    return addresses
