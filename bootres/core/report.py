"""The status report: what ``bootres status --json`` prints, as typed immutable records.

Each service builds its part (the resolver core its counters and upstreams,
router discovery its routers, the stub files theirs); ``bootres.status``
gathers the parts into a ``Report`` and renders it.  ``to_json`` and
``from_json`` are the one translation to and from the JSON that
docs/spec.md documents: a field's name is its key, a tuple is a list, and a
field a record names in ``OMITTED_WHEN_NONE`` is left out while it is None
(a source's ``error``, a file's ``error``, ``files.hosts`` without a hosts
file).  A renamed field is a changed schema, which tests/core/test_report.py
catches against the spec.

The records are ``typing.NamedTuple``s, not frozen dataclasses: the 24
dataclasses took 11 ms to define on Python 3.11 (each generated method is
compiled at import), on the way to the first answer the service gives;
NamedTuples are as immutable and as typed, and take 1 ms.
"""


import types
import typing
from collections.abc import Mapping
from typing import NamedTuple

# --- the resolver


class CacheStatus(NamedTuple):
    entries: int
    hits: int
    misses: int
    stale_served: int
    refreshes: int
    refreshes_skipped: int


class UpstreamStatus(NamedTuple):
    address: str
    state: str  # up, down or unknown
    srtt_ms: float | None
    queries: int
    wins: int
    timeouts: int
    bad_replies: int
    source: str
    domains: tuple[str, ...]


class RouteStatus(NamedTuple):
    domain: str
    upstreams: tuple[str, ...]


class SourceStatus(NamedTuple):
    name: str
    path: str
    nameservers: tuple[str, ...]
    in_use: bool
    error: str | None = None

    OMITTED_WHEN_NONE = ("error",)


class ContainerListenStatus(NamedTuple):
    address: str
    answering: bool
    on_lo: bool
    container_networks: tuple[str, ...]
    outside: int


class TcpStatus(NamedTuple):
    connections: int
    accepted: int
    refused: int
    evicted: int
    idle_closed: int
    backpressured: int
    oversized: int
    overflow_closed: int


class CacheFileStatus(NamedTuple):
    """``cache_file``: what the load found, the last save, and a fault until a save succeeds."""

    path: str
    loaded: int  # answers restored at start
    age_trusted: bool | None  # None: nothing was loaded
    age_note: str | None  # why the age was (not) trusted
    damaged: int  # regions of the file lost to damage at load
    refused: int  # records whose checksum held but that bootres does not write
    saved_entries: int | None  # answers in the last save, None before one
    saved_at: str | None  # ISO 8601, UTC
    problem: str | None  # cannot save, a leftover that cannot be removed, damaged or unreadable at load


class ResolverStatus(NamedTuple):
    """The core's counters; the service adds what only it knows (``_replace``)."""

    queries: int
    cache: CacheStatus
    upstreams: tuple[UpstreamStatus, ...]
    routes: tuple[RouteStatus, ...]
    inflight: int
    refused: int
    malformed: int
    servfail: int
    bad_replies: int
    internal_errors: int
    listen: tuple[str, ...] = ()
    tcp: TcpStatus | None = None
    search_only: tuple[str, ...] = ()
    sources: tuple[SourceStatus, ...] = ()
    container_listen: ContainerListenStatus | None = None
    cache_file: CacheFileStatus | None = None


# --- router discovery


class RouterEntryStatus(NamedTuple):
    address: str
    interface: str | None
    preference: int
    expires_in_s: float


class InterfaceStatus(NamedTuple):
    name: str
    solicitation: str
    solicitations_sent: int


class KernelRouteStatus(NamedTuple):
    gateway: str | None
    ifindex: int
    installed_by_bootres: bool


class Ipv6RouteStatus(NamedTuple):
    gateway: str | None
    interface: str | None
    origin: str
    metric: int


class RouterStatus(NamedTuple):
    """Everything empty is what a host without router discovery shows; the service adds ``discovery`` and the
    links it skips, the core the rest."""

    discovery: bool = False
    default: str | None = None
    source: str | None = None  # rdisc, netlink, file or static
    routers: tuple[RouterEntryStatus, ...] = ()
    interfaces: tuple[InterfaceStatus, ...] = ()
    default_routes: tuple[KernelRouteStatus, ...] = ()
    dropped: Mapping[str, int] = types.MappingProxyType({})
    skipped_interfaces: Mapping[str, str] = types.MappingProxyType({})
    ipv6_default_routes: tuple[Ipv6RouteStatus, ...] = ()


# --- the stub files


class SelfStatus(NamedTuple):
    names: tuple[str, ...]
    addresses: tuple[str, ...]


class PinStatus(NamedTuple):
    name: str
    addresses: tuple[str, ...]
    source: str | None  # dns or last block
    confirmed_s_ago: float | None
    last_lookup: str
    next_lookup_in_s: float | None


class HostsFileStatus(NamedTuple):
    path: str
    written_at: str | None
    entries: int
    self: SelfStatus
    pinned: tuple[PinStatus, ...]
    error: str | None = None

    OMITTED_WHEN_NONE = ("error",)


class RouterFileStatus(NamedTuple):
    path: str
    written_at: str | None
    content: tuple[str, ...]
    error: str | None = None

    OMITTED_WHEN_NONE = ("error",)


class FilesStatus(NamedTuple):
    hosts: HostsFileStatus | None = None
    defaultrouter: RouterFileStatus | None = None

    OMITTED_WHEN_NONE = ("hosts", "defaultrouter")


# --- the service


class RewriteStatus(NamedTuple):
    at: str
    nameservers: tuple[str, ...]
    says: str


class ResolvConfStatus(NamedTuple):
    path: str
    managed: bool
    in_path: bool
    behind: str | None
    saved: str
    conflict: str | None
    last_rewrite: RewriteStatus | None


class ServiceStatus(NamedTuple):
    control: str
    resolv_conf: ResolvConfStatus | None


class ErrorEntry(NamedTuple):
    at: str
    message: str


class Health(NamedTuple):
    healthy: bool
    problems: tuple[str, ...]


class Report(NamedTuple):
    running: bool
    pid: int
    uptime_s: float
    version: str
    config: str
    health: Health
    service: ServiceStatus
    resolver: ResolverStatus
    router: RouterStatus
    files: FilesStatus
    errors: tuple[ErrorEntry, ...]


# --- JSON


def to_json(value):
    """The JSON form (dicts, lists and scalars) of a status record, tuple, mapping or scalar."""
    if _is_record(type(value)):
        omitted = getattr(value, "OMITTED_WHEN_NONE", ())
        return {name: to_json(item) for name, item in zip(value._fields, value)
                if item is not None or name not in omitted}
    if isinstance(value, (tuple, list)):
        return [to_json(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): to_json(item) for key, item in value.items()}
    return value


def from_json(kind: type, data, where: str = "status"):
    """``data`` (parsed JSON) as ``kind``; ValueError naming the first key that does not fit.

    Unknown keys are ignored (a newer service may say more); a missing key
    is an error unless its field has a default.
    """
    if _is_record(kind):
        if not isinstance(data, dict):
            raise ValueError(f"{where}: an object expected, not {type(data).__name__}")
        hints = _hints(kind)
        found = {}
        for name in kind._fields:
            if name in data:
                found[name] = from_json(hints[name], data[name], f"{where}.{name}")
            elif name not in kind._field_defaults:
                raise ValueError(f"{where}.{name}: missing")
        return kind(**found)
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        (inner,) = [arg for arg in args if arg is not type(None)]
        return from_json(inner, data, where)
    if origin is tuple:
        if not isinstance(data, list):
            raise ValueError(f"{where}: a list expected, not {type(data).__name__}")
        return tuple(from_json(args[0], item, f"{where}[{i}]") for i, item in enumerate(data))
    if origin is Mapping:
        if not isinstance(data, dict):
            raise ValueError(f"{where}: an object expected, not {type(data).__name__}")
        return types.MappingProxyType({key: from_json(args[1], item, f"{where}.{key}") for key, item in data.items()})
    if kind is float and isinstance(data, int) and not isinstance(data, bool):
        return float(data)
    if type(data) is not kind:  # bool is an int to isinstance, and a count of True is a bug
        raise ValueError(f"{where}: {kind.__name__} expected, not {type(data).__name__}")
    return data


def _is_record(kind: type) -> bool:
    return isinstance(kind, type) and issubclass(kind, tuple) and hasattr(kind, "_fields")


_HINTS: dict[type, dict] = {}


def _hints(kind: type) -> dict:
    if kind not in _HINTS:
        _HINTS[kind] = typing.get_type_hints(kind)
    return _HINTS[kind]
