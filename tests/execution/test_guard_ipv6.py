"""The guard's decisions on every IPv6 form of an IPv4 address, site-local and metadata
addresses, and allowlists around them. Decisions only: nothing here connects anywhere."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from app.execution.guard import METADATA, METADATA_ADDRESSES, ForbiddenTarget, TargetGuard, classify
from config.settings import AllowedTarget

# One IPv4 address per reason the guard knows, and what it says about each.
IPV4_CASES: dict[str, str | None] = {
    "8.8.8.8": None,
    "1.1.1.1": None,
    "127.0.0.1": "loopback",
    "127.10.20.30": "loopback",
    "10.1.2.3": "private",
    "172.16.5.4": "private",
    "172.31.255.254": "private",
    "192.168.1.1": "private",
    "169.254.10.10": "link-local",
    "100.64.0.1": "reserved",  # shared address space (CGNAT)
    "0.0.0.0": "unspecified",
    "224.0.0.1": "multicast",
    "239.255.255.250": "multicast",
    "169.254.169.254": METADATA,  # EC2 IMDS (and GCP, Azure, OpenStack...)
    "169.254.170.2": METADATA,  # ECS task metadata
    "169.254.170.23": METADATA,  # EKS Pod Identity
    "100.100.100.200": METADATA,  # Alibaba Cloud
    "192.0.0.192": METADATA,  # Oracle Cloud
    "168.63.129.16": METADATA,  # Azure WireServer
}

TEREDO_SERVER = ipaddress.IPv4Address("65.54.227.120")  # a public relay


def _hex32(v4: ipaddress.IPv4Address) -> str:
    value = int(v4)
    return f"{value >> 16:x}:{value & 0xFFFF:x}"


# Every IPv6 form that delivers to an IPv4 address, as a function of that address.
EMBEDDINGS: dict[str, Callable[[ipaddress.IPv4Address], str]] = {
    "mapped ::ffff:a.b.c.d": lambda v4: f"::ffff:{v4}",
    "compatible ::a.b.c.d": lambda v4: f"::{v4}",
    "SIIT ::ffff:0:a.b.c.d": lambda v4: f"::ffff:0:{v4}",
    "NAT64 64:ff9b::/96": lambda v4: f"64:ff9b::{_hex32(v4)}",
    "6to4 2002::/16": lambda v4: f"2002:{_hex32(v4)}::1",
    "Teredo 2001::/32": lambda v4: (
        f"2001:0:{_hex32(TEREDO_SERVER)}:8000:63bf:"
        + _hex32(ipaddress.IPv4Address(int(v4) ^ 0xFFFFFFFF))
    ),
}

# The deprecated compatible form cannot express these two (:: and ::1 are themselves).
NOT_EXPRESSIBLE = {("compatible ::a.b.c.d", "0.0.0.0")}


def embedded_cases() -> Iterator[Any]:
    for form, build in EMBEDDINGS.items():
        for v4, reason in IPV4_CASES.items():
            if (form, v4) in NOT_EXPRESSIBLE:
                continue
            address = build(ipaddress.IPv4Address(v4))
            yield pytest.param(address, reason, id=f"{form}:{v4}")


@pytest.mark.parametrize(("address", "reason"), [*IPV4_CASES.items()])
def test_ipv4_classification(address: str, reason: str | None) -> None:
    assert classify(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(("address", "reason"), list(embedded_cases()))
def test_an_embedded_ipv4_address_is_judged_by_itself(address: str, reason: str | None) -> None:
    assert classify(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(("v4", "reason"), [*IPV4_CASES.items()])
def test_local_use_nat64_is_private_whatever_it_embeds(v4: str, reason: str | None) -> None:
    address = ipaddress.ip_address(f"64:ff9b:1::{_hex32(ipaddress.IPv4Address(v4))}")
    assert classify(address) == (reason or "private")


def test_local_use_nat64_with_a_48_bit_layout_still_hides_no_metadata() -> None:
    # RFC 6052 /48 layout: 169.254 in bits 48-63, bits 64-71 zero, 169.254 after them.
    assert classify(ipaddress.ip_address("64:ff9b:1:a9fe:a9:fe00::")) == METADATA


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fec0::1", "private"),  # site-local, deprecated but still routed by some
        ("fed0:1234::5", "private"),
        ("feff:ffff::1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "private"),  # documentation
        ("100::1", "private"),  # discard-only
        ("fd00:ec2::254", METADATA),  # EC2 IMDS
        ("fd00:ec2::23", METADATA),  # EKS Pod Identity
        ("fe80::a9fe:a9fe", METADATA),  # OpenStack
        ("2606:4700:4700::1111", None),
        ("2a00:1450:4001:80b::200e", None),
        ("fe00::1", "reserved"),  # IETF-reserved; Python's is_global says otherwise
        ("4000::1", "reserved"),
    ],
)
def test_ipv6_classification(address: str, reason: str | None) -> None:
    assert classify(ipaddress.ip_address(address)) == reason


def test_every_documented_metadata_endpoint_is_known() -> None:
    documented = {
        "169.254.169.254",
        "fd00:ec2::254",
        "169.254.170.2",
        "169.254.170.23",
        "fd00:ec2::23",
    }
    assert {ipaddress.ip_address(a) for a in documented} <= METADATA_ADDRESSES


def _refused(guard: TargetGuard, address: str, port: int = 80) -> str | None:
    """The reason ``guard`` refuses ``address``, or None if it lets it through."""
    try:
        guard.check_address("target", address, port)
    except ForbiddenTarget as exc:
        return exc.reason
    return None


ALL_CASES = [*IPV4_CASES.items(), *((p.values[0], p.values[1]) for p in embedded_cases())]
METADATA_FORMS = [address for address, reason in ALL_CASES if reason == METADATA] + [
    "fd00:ec2::254",
    "fd00:ec2::23",
    "fe80::a9fe:a9fe",
    "64:ff9b:1::a9fe:a9fe",
]


@pytest.mark.parametrize(("address", "reason"), ALL_CASES)
def test_the_default_guard_refuses_all_but_public(address: str, reason: str | None) -> None:
    assert _refused(TargetGuard(), address) == reason


@pytest.mark.parametrize(("address", "reason"), ALL_CASES)
def test_allow_private_opens_all_but_metadata(address: str, reason: str | None) -> None:
    expected = METADATA if reason == METADATA else None
    assert _refused(TargetGuard(allow_private=True), address) == expected


@pytest.mark.parametrize("address", METADATA_FORMS)
def test_a_network_never_opens_a_metadata_address(address: str) -> None:
    everything = TargetGuard(
        allow_private=True,
        allowed=["0.0.0.0/0", "::/0", "169.254.0.0/16", "fd00::/8", "64:ff9b::/32", "::/96"],
    )
    assert _refused(everything, address) == METADATA


def test_networks_around_metadata_open_their_other_addresses() -> None:
    guard = TargetGuard(allowed=["169.254.0.0/16", "fd00::/8", "168.63.0.0/16"])
    for address in ("169.254.10.10", "::ffff:169.254.10.10", "fd00::1", "fd00:ec2::1"):
        assert _refused(guard, address) is None, address
    for address in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "168.63.129.16"):
        assert _refused(guard, address) == METADATA, address


def test_naming_a_metadata_address_opens_it_and_only_it() -> None:
    guard = TargetGuard(allowed=["169.254.170.2", "[fd00:ec2::23]:80"])
    for address in ("169.254.170.2", "::ffff:169.254.170.2", "64:ff9b::a9fe:aa02"):
        assert _refused(guard, address, 8080) is None, address
    assert _refused(guard, "fd00:ec2::23", 80) is None
    assert _refused(guard, "fd00:ec2::23", 8080) == METADATA  # named on port 80 only
    for address in ("169.254.169.254", "169.254.170.23", "fd00:ec2::254"):
        assert _refused(guard, address) == METADATA, address


def test_an_entry_for_an_ipv4_network_admits_its_mapped_forms_but_not_teredo() -> None:
    guard = TargetGuard(allowed=["10.0.0.0/8:8443"])
    assert _refused(guard, "::ffff:10.1.2.3", 8443) is None
    assert _refused(guard, "64:ff9b::a01:203", 8443) is None
    assert _refused(guard, "::ffff:10.1.2.3", 443) == "private"
    # A Teredo address has two IPv4 readings (relay and client): only its own entry opens it.
    teredo = EMBEDDINGS["Teredo 2001::/32"](ipaddress.IPv4Address("10.1.2.3"))
    assert _refused(guard, teredo, 8443) == "private"


def test_site_local_needs_allow_private() -> None:
    assert _refused(TargetGuard(), "fec0::1") == "private"
    assert _refused(TargetGuard(allow_private=True), "fec0::1") is None
    assert _refused(TargetGuard(allowed=["fec0::/10"]), "fec0::1") is None


@pytest.mark.parametrize(
    "literal", ["[::ffff:169.254.169.254]", "[64:ff9b::a9fe:a9fe]", "[2002:a9fe:a9fe::1]"]
)
def test_resolve_refuses_a_literal_without_looking_anything_up(
    literal: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_lookup(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a literal address needs no DNS lookup")

    monkeypatch.setattr(socket, "getaddrinfo", no_lookup)
    with pytest.raises(ForbiddenTarget, match="cloud metadata"):
        TargetGuard(allow_private=True).resolve(literal, 80)


def test_the_guard_takes_the_settings_parsed_entries() -> None:
    from tests.support.settings import make_settings

    settings = make_settings(SYNMON_ALLOWED_TARGETS="10.0.0.0/8, [::1]:9000")
    assert settings.allowed_targets == (
        AllowedTarget(ipaddress.ip_network("10.0.0.0/8")),
        AllowedTarget(ipaddress.ip_network("::1/128"), 9000),
    )
    guard = TargetGuard(settings.allow_private_targets, settings.allowed_targets)
    assert guard.allowed == settings.allowed_targets
    assert _refused(guard, "10.9.9.9") is None
    assert _refused(guard, "::1", 9000) is None
    assert _refused(guard, "::1", 9001) == "loopback"
