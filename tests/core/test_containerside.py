"""core.containerside: which interfaces are the container side, and who is admitted on the container address."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from bootres.core.containerside import NOTHING, container_side

ADDRESS = ipaddress.IPv4Address("169.254.0.53")


@dataclass(frozen=True)
class L:
    index: int
    kind: str | None = None
    master: int | None = None
    loopback: bool = False
    addresses: tuple = ()


def net(*cidrs: str) -> tuple:
    return tuple(ipaddress.IPv4Interface(c) for c in cidrs)


LO = L(1, loopback=True, addresses=net("127.0.0.1/8", "169.254.0.53/32"))
ETH = L(2, addresses=net("198.18.5.10/24"))  # a NIC: no kind
DOCKER0 = L(3, "bridge", addresses=net("198.18.105.1/24"))
VETH_IN_DOCKER0 = L(4, "veth", master=3)
CALI = L(5, "veth")  # a routed pod veth, no bridge, no address
BR0 = L(6, "bridge", addresses=net("198.18.6.1/24"))  # the LAN bridge: a NIC is its port
NIC_IN_BR0 = L(7, master=6)
VETH_IN_BR0 = L(8, "veth", master=6)
VIRBR0 = L(9, "bridge", addresses=net("198.18.122.1/24"))
TAP_IN_VIRBR0 = L(10, "tun", master=9)  # a VM
EMPTY_BRIDGE = L(11, "bridge", addresses=net("198.18.106.1/24"))  # docker0 before any container
LINKS = [LO, ETH, DOCKER0, VETH_IN_DOCKER0, CALI, BR0, NIC_IN_BR0, VETH_IN_BR0, VIRBR0, TAP_IN_VIRBR0, EMPTY_BRIDGE]


def test_lo_veths_and_bridges_of_veths_only():
    side = container_side(LINKS, [ETH.index], ADDRESS)
    assert side.ifindexes == {1, 3, 4, 5, 8, 11}
    for outside in (ETH, BR0, NIC_IN_BR0, VIRBR0, TAP_IN_VIRBR0):
        assert not side.admits_arrival(outside.index)
    assert side.networks == (ipaddress.IPv4Network("198.18.105.0/24"), ipaddress.IPv4Network("198.18.106.0/24"))
    assert side.address_on_lo


def test_a_link_a_default_route_goes_through_is_the_uplink_even_a_veth_or_a_bridge_of_veths():
    uplink_veth = L(2, "veth", addresses=net("198.18.5.10/24"))  # a host that is itself a container
    side = container_side([LO, uplink_veth, DOCKER0, VETH_IN_DOCKER0], [2, None, 3], ADDRESS)
    assert side.ifindexes == {1, 4}
    assert side.networks == ()


def test_peers_admitted_over_tcp():
    side = container_side(LINKS, [ETH.index], ADDRESS)
    for host in ("127.0.0.1", "::1", "::ffff:198.18.105.7", "198.18.105.7", "198.18.5.10", "169.254.0.53"):
        assert side.admits_peer(host), host
    for host in ("198.18.5.20", "198.18.6.2", "198.18.122.5", "2001:db8::1", "not an address", ""):
        assert not side.admits_peer(host), host


def test_address_missing_from_lo_is_reported_and_nothing_is_admitted_before_the_first_snapshot():
    assert not container_side([L(1, loopback=True, addresses=net("127.0.0.1/8")), ETH], [2], ADDRESS).address_on_lo
    # On another interface it is not where bootres keeps it.
    assert not container_side([L(1, loopback=True), L(2, addresses=net("169.254.0.53/16"))], [], ADDRESS).address_on_lo
    assert not NOTHING.admits_arrival(1) and NOTHING.admits_peer("127.0.0.1")
