"""Which addresses a check may reach.

A check author controls URLs that synmon's workers fetch from inside the operator's
network, so by default a check may only reach public addresses: never loopback,
private, link-local, shared (CGNAT), multicast or reserved ones, and never a cloud
metadata service. The guard decides on resolved IP addresses, before any connection
is made, and HTTP checks then connect to exactly the address that was vetted (no
second DNS lookup that a rebinding attacker could answer differently).

The operator can open it up with ``SYNMON_ALLOW_PRIVATE_TARGETS`` (every non-metadata
address) or, more narrowly, ``SYNMON_ALLOWED_TARGETS``: a list of ``CIDR``,
``IP:PORT`` or ``CIDR:PORT`` entries, parsed once by ``config.settings``. Metadata
addresses stay closed unless an entry names the address itself (a network around it
is not enough). IPv6 forms that deliver to an IPv4 address (mapped, compatible, SIIT,
NAT64, 6to4, Teredo) are judged by that IPv4 address.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterable
from typing import Any

from config.errors import SynmonError
from config.settings import AllowedTarget, IPAddress, Settings

METADATA = "cloud metadata"

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # EC2 IMDS; also GCP, Azure, OpenStack, DigitalOcean, Oracle
        "fd00:ec2::254",  # EC2 IMDS over IPv6
        "169.254.170.2",  # ECS task metadata and credentials
        "169.254.170.23",  # EKS Pod Identity agent
        "fd00:ec2::23",  # EKS Pod Identity agent over IPv6
        "fe80::a9fe:a9fe",  # OpenStack metadata over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
        "168.63.129.16",  # Azure WireServer (a public address, reachable only inside Azure)
    )
)

# IPv6 ranges that carry an IPv4 address and deliver to it (the address is judged by
# the IPv4 address it reaches). Teredo and 6to4 use Python's own decoders.
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # SIIT ::ffff:0:a.b.c.d
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")


def _rfc6052(address: ipaddress.IPv6Address, prefix_length: int) -> ipaddress.IPv4Address:
    """The IPv4 address embedded after a NAT64 prefix of ``prefix_length`` (RFC 6052 2.2:
    bits 64-71 are skipped)."""
    packed = address.packed
    start = prefix_length // 8
    octets = [i for i in range(start, 16) if i != 8][:4]
    return ipaddress.IPv4Address(bytes(packed[i] for i in octets))


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address delivers to, if it is one of the translation
    or tunnelling forms; every reading of it when the form is ambiguous."""
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address.teredo is not None:
        server, client = address.teredo
        return [client, server]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address in _NAT64:
        return [_rfc6052(address, 96)]
    if address in _NAT64_LOCAL:
        # The translator's prefix length inside the /48 is the operator's choice.
        return [_rfc6052(address, length) for length in (96, 64, 56, 48)]
    if address in _IPV4_TRANSLATED or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    return []


# When one address has several readings, the gravest reason is the one reported.
_GRAVITY = (METADATA, "loopback", "link-local", "unspecified", "multicast", "private", "reserved")


def _classify_plain(address: IPAddress) -> str | None:
    if address in METADATA_ADDRESSES:
        return METADATA
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_unspecified:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if address.is_private or address in _SITE_LOCAL:
        return "private"
    if address.is_reserved or not address.is_global:  # fe00::/9, 4000::/2... are "global"
        return "reserved"
    return None


def classify(address: IPAddress) -> str | None:
    """Why an address is not public, or None when it is.

    An IPv6 address that embeds an IPv4 address is judged by the IPv4 address. The
    local-use NAT64 prefix (64:ff9b:1::/48) is private whatever it embeds, and a
    metadata address under any of its layouts.
    """
    if address in METADATA_ADDRESSES:
        return METADATA
    if not isinstance(address, ipaddress.IPv6Address):
        return _classify_plain(address)
    readings = [_classify_plain(v4) for v4 in embedded_ipv4(address)]
    if not readings:
        return _classify_plain(address)
    if METADATA in readings:
        return METADATA
    if address in _NAT64_LOCAL:
        return readings[0] or "private"  # the /96 layout, the usual one
    found = [reason for reason in _GRAVITY if reason in readings]
    return found[0] if found else None


class ForbiddenTarget(SynmonError):
    """The check may not reach this address; nothing was sent to it."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        self.host, self.address, self.reason = host, address, reason
        shown = host if host == address else f"{host} ({address})"
        super().__init__(
            f"refused to connect to {shown}: {reason} addresses are not allowed "
            "(SYNMON_ALLOW_PRIVATE_TARGETS / SYNMON_ALLOWED_TARGETS)"
        )


def _destinations(address: IPAddress) -> tuple[IPAddress, ...]:
    """The addresses an allowlist entry may match for ``address``: itself and, when it
    embeds exactly one IPv4 address, that one (an entry for 10.0.0.0/8 admits
    ::ffff:10.0.0.1, the same destination). Teredo and local-use NAT64 addresses have
    several readings, so only an entry for the IPv6 address itself opens them."""
    embedded = embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else []
    return (address, embedded[0]) if len(embedded) == 1 else (address,)


class TargetGuard:
    def __init__(
        self, allow_private: bool = False, allowed: Iterable[AllowedTarget | str] = ()
    ) -> None:
        """``allowed`` is ``Settings.allowed_targets``; a string is parsed the same way
        (``ValueError`` if it is not an entry), for guards built by hand."""
        self.allow_private = allow_private
        self.allowed = tuple(
            entry if isinstance(entry, AllowedTarget) else AllowedTarget.parse(entry)
            for entry in allowed
        )

    @property
    def open(self) -> bool:
        """Whether every non-metadata address is allowed (no check needed but metadata)."""
        return self.allow_private

    def check_address(self, host: str, address: str, port: int | None = None) -> None:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        reason = classify(ip)
        if reason is None:
            return
        destinations = _destinations(ip)
        if reason == METADATA:
            # Only an entry naming the address itself opens it: 169.254.0.0/16 does not.
            if any(
                entry.single_address in destinations and entry.admits(entry.single_address, port)
                for entry in self.allowed
            ):
                return
        elif self.allow_private or any(
            entry.admits(destination, port)
            for entry in self.allowed
            for destination in destinations
        ):
            return
        raise ForbiddenTarget(host, str(ip), reason)

    def resolve(self, host: str, port: int, timeout: float | None = None) -> list[tuple[int, str]]:
        """Resolve ``host`` and vet every address; ``[(family, address), ...]`` if all pass.

        All addresses must pass, not just one: a name that resolves to a public and a
        private address would otherwise reach the private one on a retry or a race.
        ``TimeoutError`` if the lookup takes longer than ``timeout`` seconds.
        """
        literal = host.strip("[]")
        try:
            ipaddress.ip_address(literal.split("%", 1)[0])
        except ValueError:
            infos = _getaddrinfo(host, port, timeout)
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


MAX_OUTSTANDING_LOOKUPS = 256
_outstanding_lookups = threading.BoundedSemaphore(MAX_OUTSTANDING_LOOKUPS)


def _getaddrinfo(host: str, port: int, timeout: float | None) -> list[Any]:
    """``socket.getaddrinfo`` that gives up after ``timeout`` seconds.

    The system resolver has no deadline of its own (its retries can take tens of
    seconds), so the lookup runs on a thread of its own and is abandoned, not waited
    for, when time is up; that thread ends when the resolver gives up.
    """
    if timeout is None:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    outcome: list[Any] = []
    done = threading.Event()
    # An abandoned lookup keeps its thread until the resolver gives up: when the resolver
    # hangs, a worker with a hundred checks in flight would pile up thousands of them.
    slots = _outstanding_lookups
    if not slots.acquire(blocking=False):
        raise TimeoutError(
            f"DNS lookup of {host} not started: {MAX_OUTSTANDING_LOOKUPS} lookups are "
            "still waiting for the resolver"
        )

    def look_up() -> None:
        try:
            outcome.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            outcome.append(exc)
        finally:
            slots.release()
            done.set()

    try:
        threading.Thread(target=look_up, name="synmon-dns", daemon=True).start()
    except BaseException:
        slots.release()
        raise
    if not done.wait(max(0.0, timeout)):
        raise TimeoutError(f"DNS lookup of {host} took longer than {timeout:.3g}s")
    if isinstance(outcome[0], OSError):
        raise outcome[0]
    return list(outcome[0])


_guards: dict[Settings, TargetGuard] = {}


def guard_for(settings: Settings) -> TargetGuard:
    if settings not in _guards:
        _guards[settings] = TargetGuard(settings.allow_private_targets, settings.allowed_targets)
    return _guards[settings]
