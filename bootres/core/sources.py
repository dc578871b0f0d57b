"""Upstream sources: where the host's nameservers come from, turned into split-DNS routing.

The readers take one file's bytes and return a ``SourceRecord`` (or raise
``SourceError`` when the whole file is unusable; the shell then keeps the
last good record and logs the message).  ``select`` turns the records and
the configuration into a ``Selection``: the ``Routing`` the stub uses and
the search list the managed /etc/resolv.conf carries.

Selection policy:

1. ``upstreams`` in the configuration, if any, override every source: they
   are the default group, source "config", and no source adds servers or
   routes.
2. Otherwise the *dynamic* records (every kind but "file") that have servers
   are used together.  "file" records (``upstreams_file``, including a
   static resolv.conf moved there at install) are used only when no dynamic
   record has a server: the static list is the fallback of last resort, so
   a DHCP list that changes is never mixed with a stale static one.
3. Every routing domain of a record in use, and every search domain below
   a public suffix (``bootres.core.publicsuffix``: never ``com`` or
   ``co.uk``, which stay search-only), routes to that record's servers;
   records naming the same domain share the route (their servers joined,
   in order).  The default group is the servers of the
   records in use that are a default route; when none is, every server in
   use (systemd-resolved's fallback).
4. ``DOMAIN=ADDRESS`` items of the configuration always apply: they add
   routes and replace the sources' servers for exactly that domain.
5. A source's nameserver on loopback is never used: bootres's own address
   would loop, and any other (systemd-resolved's 127.0.0.53, a dnsmasq on
   127.0.0.1) is another local stub in front of the real upstreams, whose
   list bootres reads from the same sources itself; both are dropped with a
   warning.  Loopback upstreams in the configuration are kept (an admin may
   put an unbound on 127.0.0.1:5353 behind bootres on purpose); bootres's own
   addresses are dropped there too.
6. The search list is the search domains of the records in use, joined in
   order without duplicates; with the configuration's ``upstreams`` those
   are the records that would otherwise be used (the configuration names
   servers, not search domains).  glibc 2.36 reads a search list of any
   length (resolv.conf(5): unlimited since 2.26), so it is not cut.
   Routing-only domains never go there.

Pure: bytes and tuples in, data and warning strings out.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from bootres.core import resolvconf
from bootres.core.publicsuffix import BUILT_IN, PublicSuffixes
from bootres.core.routing import Address, Route, Routing, UpstreamSpec

MAX_SOURCE_BYTES = 65536  # a resolv.conf or link state file is a few hundred bytes
STATIC_KIND = "file"
CONFIG_SOURCE = "config"

# systemd-resolved's link_relevant(): a networkd-managed link takes DNS traffic
# in these operational states only; below them it has no carrier or no address.
NETWORKD_DNS_OPER_STATES = frozenset({"degraded-carrier", "degraded", "routable"})
NETWORKD_CONFIGURED = frozenset({"configuring", "configured"})

_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?", re.ASCII)  # no hyphen at either end (RFC 1123)
# systemd's in_addr_port_ifindex_name_to_string(): [V6]:PORT%IFINDEX (the #NAME is split off first).
_BRACKETED = re.compile(r"\[([^\]%]+)\](?::([0-9]{1,5}))?(?:%([0-9]{1,10}))?", re.ASCII)
_IFINDEX = re.compile(r"[0-9]{1,10}", re.ASCII)


class SourceError(ValueError):
    """The whole file is unusable; the message is the operator's log line."""


@dataclass(frozen=True)
class SourceRecord:
    kind: str  # "dhclient", "dhcpcd", "networkd", "networkmanager", "resolved", "resolvconf", "resolv.conf", "file"
    name: str  # for status and logs: "dhclient eth0", "networkd lab0", "NetworkManager", …
    origin: str  # the file it was read from
    servers: tuple[Address, ...]  # (address text, port); IPv6 link-local keeps its %scope
    search: tuple[str, ...] = ()  # search domains (they route too), lower case, no trailing dot
    routing: tuple[str, ...] = ()  # routing-only domains (networkd "~corp.example")
    default_route: bool = True  # its servers also serve names outside every routing domain


@dataclass(frozen=True)
class Selection:
    routing: Routing
    search: tuple[str, ...] = ()  # for the managed /etc/resolv.conf
    # Names of the records in use: their search domains, and their servers unless config overrides.
    used: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()  # one per thing dropped, for the operator's log
    search_only: tuple[str, ...] = ()  # search domains that are public suffixes: never routing domains


def normalize_domain(text: str) -> str:
    """``Corp.Example.`` -> ``corp.example``; ValueError for anything that is not a plain DNS name."""
    name = text.lower() if text.isascii() else ""  # lower() would turn some non-ASCII letters into ASCII ones
    if name.endswith("."):
        name = name[:-1]
    if not name or len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        raise ValueError(f"{text[:80]!r} is not a domain name")
    return name


def endpoint_label(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _decode(origin: str, data: bytes) -> str:
    if len(data) > MAX_SOURCE_BYTES:
        raise SourceError(f"{origin}: larger than {MAX_SOURCE_BYTES} bytes, not a nameserver list")
    if b"\0" in data:
        raise SourceError(f"{origin}: contains NUL bytes, not a text file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{origin}: not UTF-8 text (byte {exc.start})") from None


def _usable_server(text: str) -> str:
    """The canonical text of a nameserver address; ValueError when no query could go there."""
    address = ipaddress.ip_address(text)
    if address.is_unspecified or address.is_multicast:
        raise ValueError(f"nameserver {text[:80]!r} is not a unicast address")
    if address.version == 6 and address.scope_id is not None and not resolvconf.SCOPE.fullmatch(address.scope_id):
        raise ValueError(f"nameserver {text[:80]!r} has a bad interface (%scope)")
    if address.version == 6 and address.is_link_local and not address.scope_id:
        raise ValueError(f"link-local nameserver {text[:80]!r} names no interface (%scope)")
    return str(address)


def _is_unscoped_link_local(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False  # _usable_server says why
    return address.version == 6 and address.is_link_local and not address.scope_id


def _domains(origin: str, words, warnings: list[str]) -> tuple[str, ...]:
    found: list[str] = []
    for word in words:
        try:
            domain = normalize_domain(word)
        except ValueError as exc:
            warnings.append(f"{origin}: domain skipped: {exc}")
            continue
        if domain not in found:
            found.append(domain)
    return tuple(found)


def read_resolv_conf_record(kind: str, name: str, origin: str, data: bytes,
                            link: str | None = None) -> tuple[SourceRecord, list[str]]:
    """A resolv.conf-format file: dhclient hook output, dhcpcd's, NetworkManager's, resolvconf's, ``upstreams_file``.

    Port is always 53 (resolv.conf cannot name one); loopback addresses are
    kept here, ``select`` decides.  An empty file is a record with no servers.
    ``link``: the interface the file is about (a per-link record), which an
    IPv6 link-local nameserver written without its %scope is on.
    """
    parsed = resolvconf.parse(_decode(origin, data))
    warnings = [f"{origin}: {problem}" for problem in parsed.problems]
    servers: list[Address] = []
    for text in parsed.nameservers:
        if link and _is_unscoped_link_local(text):
            text = f"{text}%{link}"
        try:
            address = (_usable_server(text), 53)
        except ValueError as exc:
            warnings.append(f"{origin}: {exc}")
            continue
        if address not in servers:
            servers.append(address)
    if parsed.nameserver_lines and not servers:
        raise SourceError(f"{origin}: no usable nameserver in {parsed.nameserver_lines} nameserver line(s)")
    search = _domains(origin, parsed.search, warnings)
    return SourceRecord(kind, name, origin, tuple(servers), search), warnings


def read_resolved_list(name: str, origin: str, data: bytes) -> tuple[SourceRecord, list[str]]:
    """systemd-resolved's upstream list (/run/systemd/resolve/resolv.conf): its global and per-link servers.

    Its loopback entries are left out without a word: bootres itself (the
    package's drop-in makes bootres resolved's global server) or a local
    resolver an admin made resolved's upstream, neither an upstream for bootres.
    """
    record, warnings = read_resolv_conf_record("resolved", name, origin, data)
    servers = tuple(address for address in record.servers if not is_loopback(address[0]))
    return replace(record, servers=servers), warnings


def _networkd_server(entry: str, link_ifindex: str | None) -> Address:
    """One DNS= entry of a link state file: ``ADDR``, ``V4:PORT``, ``[V6]:PORT``, with ``%IFINDEX`` and ``#NAME``.

    The ``#NAME`` is a DNS-over-TLS server name; bootres asks the address in
    plain DNS.  An IPv6 link-local address without ``%IFINDEX`` (DHCPv6 and
    RA servers are written so) is on the link the file describes.
    """
    hostport = entry.split("#", 1)[0]
    port, scope = "53", None
    if hostport.startswith("["):
        match = _BRACKETED.fullmatch(hostport)
        if not match or ":" not in match.group(1):
            raise ValueError(f"DNS entry {entry[:80]!r} is not [IPV6]:PORT")
        host, port, scope = match.group(1), match.group(2) or port, match.group(3)
    else:
        host, _, scope = hostport.partition("%")
        if host.count(":") == 1:
            host, port = host.split(":")
        if scope and not _IFINDEX.fullmatch(scope):
            raise ValueError(f"DNS entry {entry[:80]!r} has a bad interface index")
    if not _IFINDEX.fullmatch(port) or not 1 <= int(port) <= 65535:
        raise ValueError(f"DNS entry {entry[:80]!r} has a bad port")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"DNS entry {entry[:80]!r} is not an IP address") from None
    if address.version == 6 and address.is_link_local:
        scope = scope or link_ifindex
        host = f"{host}%{scope}" if scope else host
    return (_usable_server(host), int(port))


def _parse_boolean(text: str) -> bool | None:
    """systemd's parse_boolean(); None for anything else."""
    word = text.lower()
    if word in ("1", "yes", "y", "true", "t", "on"):
        return True
    if word in ("0", "no", "n", "false", "f", "off"):
        return False
    return None


def read_networkd_link(name: str, origin: str, data: bytes) -> tuple[SourceRecord | None, list[str]]:
    """A systemd-networkd link state file, ``/run/systemd/netif/links/IFINDEX`` (what systemd-resolved reads).

    None when the link gives no nameservers now: not configured by networkd
    (``ADMIN_STATE``) or without carrier or address (``OPER_STATE``, as
    systemd-resolved's ``link_relevant``).  ``DOMAINS`` are search domains,
    ``ROUTE_DOMAINS`` routing-only ones; ``.`` in either (``Domains=~.``)
    makes the link a default route.  ``DNS_DEFAULT_ROUTE`` decides when
    written; otherwise, as systemd-resolved's ``dns_scope_is_default_route``,
    a link with a routing-only domain and no ``.`` is not a default route.
    """
    values: dict[str, str] = {}
    warnings: list[str] = []
    for number, line in enumerate(_decode(origin, data).split("\n"), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, equals, value = line.partition("=")
        if not equals:
            warnings.append(f"{origin}: line {number}: not KEY=VALUE, skipped")
            continue
        values[key.strip()] = value.strip()  # a later assignment wins, as systemd's parse_env_file
    admin, oper = values.get("ADMIN_STATE"), values.get("OPER_STATE")
    if admin is None or oper is None:
        raise SourceError(f"{origin}: not a systemd-networkd link state file (no ADMIN_STATE or OPER_STATE)")
    if admin not in NETWORKD_CONFIGURED or oper not in NETWORKD_DNS_OPER_STATES:
        return None, warnings

    basename = origin.rsplit("/", 1)[-1]
    link_ifindex = basename if _IFINDEX.fullmatch(basename) else None
    entries = values.get("DNS", "").split()
    servers: list[Address] = []
    for entry in entries:
        try:
            address = _networkd_server(entry, link_ifindex)
        except ValueError as exc:
            warnings.append(f"{origin}: {exc}")
            continue
        if address not in servers:
            servers.append(address)
    if entries and not servers:
        raise SourceError(f"{origin}: no usable nameserver among {len(entries)} DNS entries")

    search_words = values.get("DOMAINS", "").split()
    # networkd writes route domains without their "~"; a hand-made file may keep it.
    route_words = [word.removeprefix("~") for word in values.get("ROUTE_DOMAINS", "").split()]
    catch_all = "." in search_words or "." in route_words
    search = _domains(origin, [w for w in search_words if w != "."], warnings)
    routing = tuple(d for d in _domains(origin, [w for w in route_words if w != "."], warnings) if d not in search)

    default_route = catch_all or not routing
    if "DNS_DEFAULT_ROUTE" in values:
        explicit = _parse_boolean(values["DNS_DEFAULT_ROUTE"])
        if explicit is None:
            warnings.append(f"{origin}: DNS_DEFAULT_ROUTE={values['DNS_DEFAULT_ROUTE'][:40]!r} "
                            "is not yes or no, ignored")
        else:
            default_route = explicit
    return SourceRecord("networkd", name, origin, tuple(servers), search, routing, default_route), warnings


def is_loopback(host: str) -> bool:
    """A loopback address, also as an IPv4-mapped IPv6 one (``::ffff:127.0.0.1``); ``host`` is a valid address."""
    address = ipaddress.ip_address(host)
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _add(group: list[Address], addresses) -> None:
    group.extend(address for address in addresses if address not in group)


def _loop_warning(who: str, address: Address) -> str:
    return f"{who}: nameserver {endpoint_label(address)} is bootres itself (asking it would loop): not used"


def _upstream_servers(record: SourceRecord, own: frozenset[Address], warnings: list[str]) -> tuple[Address, ...]:
    """A record's servers that are real upstreams: not bootres itself, not another stub on loopback."""
    servers: list[Address] = []
    for address in record.servers:
        if address in own:
            warnings.append(_loop_warning(record.name, address))
            continue
        try:
            loopback = is_loopback(address[0])
        except ValueError:
            warnings.append(f"{record.name}: nameserver {address[0][:80]!r} is not an IP address: not used")
            continue
        if loopback:
            warnings.append(f"{record.name}: nameserver {endpoint_label(address)} is another local resolver "
                            "on loopback, not an upstream: not used")
        elif address not in servers:
            servers.append(address)
    return tuple(servers)


def _config_routes(config_domains, own: frozenset[Address], warnings: list[str]) -> dict[str, list[Address]]:
    routes: dict[str, list[Address]] = {}
    for domain_text, address in config_domains:
        try:
            domain = normalize_domain(domain_text)
        except ValueError as exc:
            warnings.append(f"config: route skipped: {exc}")
            continue
        if address in own:
            warnings.append(_loop_warning(f"config {domain}", address))
            continue
        _add(routes.setdefault(domain, []), [address])
    return routes


def select(records: Iterable[SourceRecord], config_default: tuple[Address, ...] = (),
           config_domains: tuple[tuple[str, Address], ...] = (), own: frozenset[Address] = frozenset(),
           suffixes: PublicSuffixes = BUILT_IN) -> Selection:
    """The routing and search list the sources and the configuration call for now (policy: the module docstring)."""
    warnings: list[str] = []
    usable = [(record, _upstream_servers(record, own, warnings)) for record in records]
    usable = [(record, servers) for record, servers in usable if servers]
    in_use = ([(r, s) for r, s in usable if r.kind != STATIC_KIND]
              or [(r, s) for r, s in usable if r.kind == STATIC_KIND])

    configured: list[Address] = []
    for address in config_default:
        if address in own:
            warnings.append(_loop_warning("config", address))
        else:
            _add(configured, [address])

    default: list[Address] = []
    routes: dict[str, list[Address]] = {}
    givers: dict[Address, list[str]] = {}  # address -> names of the records whose servers are in effect
    search_only: list[str] = []
    if configured:
        default = configured
    else:
        any_default_route = any(record.default_route for record, _ in in_use)
        for record, servers in in_use:
            if record.default_route or not any_default_route:
                _add(default, servers)
            for domain in record.search:
                if suffixes.is_public(domain):
                    _add(search_only, [domain])
                else:
                    _add(routes.setdefault(domain, []), servers)
            for domain in record.routing:
                _add(routes.setdefault(domain, []), servers)
            for address in servers:
                givers.setdefault(address, []).append(record.name)
    from_config = _config_routes(config_domains, own, warnings)
    routes.update(from_config)
    for address in configured + [a for servers in from_config.values() for a in servers]:
        if CONFIG_SOURCE not in givers.setdefault(address, []):
            givers[address].append(CONFIG_SOURCE)

    route_list = tuple(Route(domain, tuple(servers)) for domain, servers in routes.items())
    listed: list[Address] = list(default)
    for route in route_list:
        _add(listed, route.upstreams)
    upstreams = tuple(
        UpstreamSpec(address, endpoint_label(address), ", ".join(givers[address]),
                     tuple(route.domain for route in route_list if address in route.upstreams))
        for address in listed
    )
    search: list[str] = []
    for record, _ in in_use:
        _add(search, record.search)
    return Selection(
        routing=Routing(upstreams, tuple(default), route_list),
        search=tuple(search),
        used=tuple(record.name for record, _ in in_use),
        warnings=tuple(warnings),
        search_only=tuple(d for d in search_only if d not in routes),
    )
