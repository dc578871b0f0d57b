"""Which upstreams may be asked a given name: split DNS.

Upstreams learned from different links or configured for different domains
serve different views of the namespace: a VPN link's servers know
``corp.example``, a public resolver does not and answers NXDOMAIN fast.
Racing them would let the wrong view win and leak internal names outward, so
a question goes to one *group* only, and the race or hedge happens inside it:

- the servers of the longest routing domain that ends the name (``corp.example``
  for ``www.corp.example``); when several sources route the same domain, all
  their servers form the group, like systemd-resolved and dnsmasq's
  ``server=/domain/``;
- otherwise the default servers.

A route with no servers is kept as one: its names get SERVFAIL rather than
going to the default servers, which would leak them.

``Routing`` is plain data; ``bootres.core.sources`` builds it from what the
host's sources say, the stub core asks it with the question's wire-format
name (the cache key's name part, already lower-cased).
"""

from __future__ import annotations

from dataclasses import dataclass, field

Address = tuple[str, int]


@dataclass(frozen=True)
class UpstreamSpec:
    """One upstream as status shows it: where it is, where bootres learned it, what it serves."""

    address: Address
    label: str  # "198.18.0.10:53", "[2001:db8::1]:53"
    source: str  # "dhclient eth0", "networkd lab0", "config", "file /etc/bootres/upstream-resolv.conf", …
    domains: tuple[str, ...] = ()  # routing domains it serves; empty: a default server only


@dataclass(frozen=True)
class Route:
    domain: str  # lower case, no trailing dot, never empty
    upstreams: tuple[Address, ...]


def domain_wire(domain: str) -> bytes:
    """``corp.example`` in DNS wire form, lower case, without the root label."""
    out = bytearray()
    for label in domain.lower().rstrip(".").split("."):
        raw = label.encode("ascii")
        if not 0 < len(raw) < 64:
            raise ValueError(f"bad domain {domain!r}")
        out.append(len(raw))
        out += raw
    return bytes(out)


def _longest_suffix(table: dict, name: bytes):
    """``table``'s value for the longest suffix of wire ``name`` it holds, or None.

    Walks the name's label boundaries from the left, so the first suffix
    found is the longest.
    """
    i = 0
    end = len(name)
    while i < end:
        found = table.get(name[i:])
        if found is not None:
            return found
        length = name[i]
        if length == 0 or length > 63:  # the root, or a compression pointer: no route
            break
        i += 1 + length
    return None


@dataclass(frozen=True)
class Routing:
    """Every upstream, the default group and the routes.

    Normalised when built: one route per domain (lower case, no trailing dot,
    the servers of every route for it merged in order), no address twice in a
    group.  Every address a group names must be listed in ``upstreams``
    (ValueError otherwise): that list is what status shows and what keeps
    each upstream's health.
    """

    upstreams: tuple[UpstreamSpec, ...] = ()  # every distinct upstream, in the order status lists them
    default: tuple[Address, ...] = ()  # asked for names outside every route
    routes: tuple[Route, ...] = ()
    # Wire-form suffix (with the root label) -> its Route, for group_of and route_of.
    _by_suffix: dict = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        merged: dict[str, list[Address]] = {}
        for route in self.routes:
            merged.setdefault(route.domain.lower().rstrip("."), []).extend(route.upstreams)
        routes = tuple(Route(domain, tuple(dict.fromkeys(servers))) for domain, servers in merged.items())
        object.__setattr__(self, "routes", routes)
        object.__setattr__(self, "default", tuple(dict.fromkeys(self.default)))
        object.__setattr__(self, "_by_suffix", {domain_wire(r.domain) + b"\x00": r for r in routes})
        listed = {spec.address for spec in self.upstreams}
        for addresses in (self.default, *(r.upstreams for r in routes)):
            unlisted = [a for a in addresses if a not in listed]
            if unlisted:
                raise ValueError(f"upstreams {unlisted} are used by a group but not listed")

    def group_of(self, name: bytes) -> tuple[Address, ...]:
        """The upstreams to ask for ``name``: a lower-cased wire-format name ending in the root label."""
        if self._by_suffix:
            route = _longest_suffix(self._by_suffix, name)
            if route is not None:
                return route.upstreams
        return self.default

    def route_of(self, name: bytes) -> Route | None:
        """The route ``name`` falls under (longest domain), or None for the default group."""
        return _longest_suffix(self._by_suffix, name)


class NamesUnder:
    """The wire names at or below any of ``domains``, as a container (``name in names``)."""

    def __init__(self, domains):
        self._suffixes = {domain_wire(d) + b"\x00": True for d in domains}

    def __contains__(self, name: bytes) -> bool:
        return _longest_suffix(self._suffixes, name) is not None
