"""Which addresses a check may reach.

A check author controls URLs that synmon's workers fetch from inside the operator's
network, so by default a check may only reach public addresses: never loopback,
private, link-local, shared (CGNAT), multicast or reserved ones, and never a cloud
metadata service. The guard decides on resolved IP addresses, before any connection
is made, and HTTP checks then connect to exactly the address that was vetted (no
second DNS lookup that a rebinding attacker could answer differently).

The operator can open it up with ``SYNMON_ALLOW_PRIVATE_TARGETS`` (every non-metadata
address) or, more narrowly, ``SYNMON_ALLOWED_TARGETS``: a list of ``CIDR``,
``IP:PORT`` or ``CIDR:PORT`` entries. Metadata addresses stay closed unless an entry
names them explicitly.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
    )
)


class ForbiddenTarget(Exception):
    """The check may not reach this address; nothing was sent to it."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        self.host, self.address, self.reason = host, address, reason
        shown = host if host == address else f"{host} ({address})"
        super().__init__(
            f"refused to connect to {shown}: {reason} addresses are not allowed "
            "(SYNMON_ALLOW_PRIVATE_TARGETS / SYNMON_ALLOWED_TARGETS)"
        )


@dataclass(frozen=True)
class AllowEntry:
    network: IPNetwork
    port: int | None

    @classmethod
    def parse(cls, text: str) -> AllowEntry:
        text = text.strip()
        port: int | None = None
        host = text
        if text.startswith("["):  # [v6]:port or [v6/len]:port
            host, _, rest = text[1:].partition("]")
            port = int(rest[1:]) if rest.startswith(":") else None
        elif text.count(":") == 1:
            host, port_text = text.split(":")
            port = int(port_text)
        return cls(ipaddress.ip_network(host, strict=False), port)

    def admits(self, address: IPAddress, port: int | None) -> bool:
        return address in self.network and (self.port is None or self.port == port)


def _unmapped(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def classify(address: IPAddress) -> str | None:
    """Why an address is not public, or None when it is."""
    address = _unmapped(address)
    if address in METADATA_ADDRESSES:
        return "cloud metadata"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_unspecified:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "reserved"
    return None


class TargetGuard:
    def __init__(self, allow_private: bool = False, allowed: Iterable[str] = ()) -> None:
        self.allow_private = allow_private
        self.allowed = tuple(AllowEntry.parse(entry) for entry in allowed)

    @property
    def open(self) -> bool:
        """Whether every non-metadata address is allowed (no check needed but metadata)."""
        return self.allow_private

    def check_address(self, host: str, address: str, port: int | None = None) -> None:
        ip = _unmapped(ipaddress.ip_address(address.split("%", 1)[0]))
        reason = classify(ip)
        if reason is None:
            return
        if any(entry.admits(ip, port) for entry in self.allowed):
            return
        if self.allow_private and reason != "cloud metadata":
            return
        raise ForbiddenTarget(host, str(ip), reason)

    def resolve(self, host: str, port: int) -> list[tuple[int, str]]:
        """Resolve ``host`` and vet every address; ``[(family, address), ...]`` if all pass.

        All addresses must pass, not just one: a name that resolves to a public and a
        private address would otherwise reach the private one on a retry or a race.
        """
        literal = host.strip("[]")
        try:
            ipaddress.ip_address(literal.split("%", 1)[0])
        except ValueError:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            addresses = []
            for family, _type, _proto, _name, sockaddr in infos:
                entry = (int(family), str(sockaddr[0]))
                if entry not in addresses:
                    addresses.append(entry)
        else:
            family = socket.AF_INET6 if ":" in literal else socket.AF_INET
            addresses = [(int(family), literal)]
        for _family, address in addresses:
            self.check_address(host, address, port)
        return addresses
