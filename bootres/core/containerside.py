"""The container-facing address: which interfaces are this host's containers', and who may ask there.

Docker, Podman and Kubernetes give a container the host's resolv.conf
without its loopback nameservers (and Google's when none is left), so
bootres also answers on a non-loopback address kept on ``lo``
(``[resolver] container_listen``, docs/containers.md).  Linux delivers a
packet for any of the host's addresses whatever interface it arrives on:
a LAN neighbour that routes that address to this host reaches it too.  So
a query to it is this host's or a container's only when it arrives on the
*container side*:

- ``lo`` (the host itself, rootless containers through slirp4netns/pasta);
- a veth (Calico, Cilium, Podman and the CNI ptp plugin route to veths);
- a bridge whose ports are all veths, or that has none yet (docker0,
  podman0, cni0).  A bridge with a NIC, bond, VLAN or tap among its ports
  carries a LAN or VMs: not the container side;
- but never a link a default route goes through: that is the uplink, as a
  veth is for a host that is itself a container (LXC, systemd-nspawn).

Over UDP the listener knows the arrival interface (IP_PKTINFO).  TCP has
no per-connection equivalent, so there the peer's address must be this
host's own or on a network of a container-side interface (a forged source
cannot complete a TCP handshake from elsewhere: the SYN-ACK goes to the
container side).

Pure functions of a netlink snapshot's links: anything with ``index``,
``kind`` (IFLA_INFO_KIND or None), ``master`` (IFLA_MASTER or None),
``loopback`` and ``addresses`` (IPv4 interfaces).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable, Protocol


class LinkFacts(Protocol):
    index: int
    kind: str | None
    master: int | None
    loopback: bool
    addresses: tuple[ipaddress.IPv4Interface, ...]


@dataclass(frozen=True)
class ContainerSide:
    """Where the container address may be asked from, as of one netlink snapshot."""

    ifindexes: frozenset[int]  # lo, veths, bridges of veths
    networks: tuple[ipaddress.IPv4Network, ...]  # the IPv4 networks on those interfaces
    address_on_lo: bool  # the container address is configured on a loopback interface
    own: frozenset[ipaddress.IPv4Address] = frozenset()  # this host's IPv4 addresses, on any link

    def admits_arrival(self, ifindex: int) -> bool:
        """A UDP query that arrived on interface ``ifindex`` comes from this host or a container."""
        return ifindex in self.ifindexes

    def admits_peer(self, host: str) -> bool:
        """A TCP peer at ``host`` is this host or a container: loopback, one of this host's addresses (the kernel
        drops a packet from the wire that claims one), or on a container-side network."""
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if address.version == 6:
            if not address.ipv4_mapped:
                return address.is_loopback
            address = address.ipv4_mapped
        return address.is_loopback or address in self.own or any(address in network for network in self.networks)


NOTHING = ContainerSide(frozenset(), (), False)  # before the first snapshot: loopback TCP peers only


def container_bridges(links: Iterable[LinkFacts], port_kinds: tuple[str, ...] = ("veth",)) -> frozenset[int]:
    """The bridges whose ports are all of ``port_kinds``, or that have none yet: docker0, podman0, cni0, lxcbr0
    (and virbr0, whose VMs' ports are taps, kind ``tun``, when that is among ``port_kinds``)."""
    links = list(links)
    ports: dict[int, list[str | None]] = {}
    for link in links:
        if link.master is not None:
            ports.setdefault(link.master, []).append(link.kind)
    return frozenset(link.index for link in links
                     if link.kind == "bridge" and all(kind in port_kinds for kind in ports.get(link.index, ())))


def container_side(links: Iterable[LinkFacts], uplinks: Iterable[int | None],
                   address: ipaddress.IPv4Address | None) -> ContainerSide:
    """The container side of this host's ``links``, ``uplinks`` (the default routes' interfaces) excluded;
    whether ``address`` is on a loopback link."""
    links = list(links)
    uplinks = set(uplinks)
    bridges = container_bridges(links)
    side = [link for link in links
            if link.loopback or (link.index not in uplinks and (link.kind == "veth" or link.index in bridges))]
    networks = tuple(dict.fromkeys(iface.network for link in side if not link.loopback for iface in link.addresses))
    on_lo = address is not None and any(
        iface.ip == address for link in links if link.loopback for iface in link.addresses)
    own = frozenset(iface.ip for link in links for iface in link.addresses)
    return ContainerSide(frozenset(link.index for link in side), networks, on_lo, own)
