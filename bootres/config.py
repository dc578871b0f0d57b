"""Configuration: INI text in, frozen dataclasses out, every problem as PATH:LINE.

The standard configparser forgets line numbers, so this module has its own
small reader.  It understands exactly what the shipped bootres.conf uses:
``[section]`` headers, ``key = value``, indented continuation lines, full-line
``#``/``;`` comments and inline comments after whitespace.  All problems in
all files are collected before anything is reported.

Lines are the lines an editor shows: only ``\n`` ends one (a ``\r`` before
it, a Windows line ending, is dropped), so PATH:LINE is what ``sed -n LINEp``
prints.  ``str.splitlines`` would also break at ``\r``, ``\v``, ``\f``,
``\x1c``-``\x1e``, U+0085, U+2028 and U+2029, shifting every line number
after one and starting a new key inside a value; here such a character on a
line with text is reported at that line (a line holding only blanks and page
breaks is blank).

``load()`` is the only function here that touches the file system.
"""

from __future__ import annotations

import glob
import ipaddress
import os
import re
from dataclasses import dataclass, field
from typing import Callable

from bootres.core.sources import normalize_domain

DEFAULT_PATH = "/etc/bootres/bootres.conf"
MIN_REFRESH_INTERVAL = 1.0  # [hosts] refresh_interval, seconds

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, order=True)
class Endpoint:
    """An IP address and UDP/TCP port, rendered the way resolv.conf users expect."""

    host: IPAddress
    port: int = 53

    def __str__(self) -> str:
        if self.host.version == 6:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"

    @property
    def sockaddr(self) -> tuple[str, int]:
        return (str(self.host), self.port)


@dataclass(frozen=True)
class ResolverConfig:
    listen: tuple[Endpoint, ...]
    container_listen: Endpoint | None  # the address containers reach bootres at (docs/containers.md); None: no
    upstreams: tuple[Endpoint, ...]  # plain items: override the host's sources
    upstream_domains: tuple[tuple[str, Endpoint], ...]  # DOMAIN=ADDRESS items: split-DNS routes, always
    upstreams_file: str | None
    strategy: str
    hedge_delay: float | None  # None: derived from measured RTTs ("auto")
    timeout: float
    cache_size: int
    cache_file: str | None
    serve_stale: bool
    stale_max_age: float
    stale_answer_after: float
    boot_stale_after: float  # stale_answer_after until an upstream has answered since start
    hosts_files: tuple[str, ...]
    allow: tuple[IPNetwork, ...]
    max_inflight: int
    prefetch: bool  # refresh names in use shortly before they expire
    prefetch_rate: int  # refreshes started per second at most
    manage_resolv_conf: bool
    tcp_connections: int  # client TCP connections open at once; the least recently active makes room
    tcp_idle_timeout: float  # seconds without a query before a client TCP connection is closed
    tcp_output_queue: int  # bytes of replies a client TCP connection may have waiting
    trust_ad: bool  # pass the upstreams' AD bit on and say trust-ad in resolv.conf (docs/security.md)

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """Every address bootres answers on: ``listen``, then ``container_listen``."""
        if self.container_listen is None or self.container_listen in self.listen:
            return self.listen
        return (*self.listen, self.container_listen)


@dataclass(frozen=True)
class HostsConfig:
    file: str | None
    self_entry: bool  # the "self" key; "self" would shadow the convention
    router_names: tuple[str, ...]
    pin: tuple[str, ...]
    refresh_interval: float  # seconds between DNS lookups of each pinned name


@dataclass(frozen=True)
class RouterConfig:
    discovery: bool
    interfaces: tuple[str, ...]  # empty: every suitable interface
    solicit: bool
    install_route: bool
    static: tuple[ipaddress.IPv4Address, ...]
    defaultrouter_file: str | None
    routers: tuple[ipaddress.IPv4Network, ...]  # empty: any on-link router; else only these (docs/router.md)


@dataclass(frozen=True)
class ServiceConfig:
    state_dir: str
    metrics_file: str | None


@dataclass(frozen=True)
class Config:
    resolver: ResolverConfig
    hosts: HostsConfig
    router: RouterConfig
    service: ServiceConfig
    path: str = DEFAULT_PATH
    sources: tuple[str, ...] = field(default=())  # every file read, in order


@dataclass(frozen=True)
class Problem:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` lists every mistake found."""

    def __init__(self, problems: list[Problem]):
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


# --- value parsers: text -> value, or ValueError with a message for the admin


def parse_bool(text: str) -> bool:
    word = text.lower()
    if word in ("yes", "true", "on", "1"):
        return True
    if word in ("no", "false", "off", "0"):
        return False
    raise ValueError(f"expected yes or no, got {text!r}")


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(text: str) -> float:
    """Seconds from ``400ms``, ``3s``, ``5m``, ``2h``, ``3d`` or a bare number of seconds."""
    match = _DURATION.match(text.strip().lower())
    if not match:
        raise ValueError(f"bad duration {text!r} (use a number with ms, s, m, h or d)")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def _int_parser(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"expected a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise ValueError(f"{value} is out of range {low}..{high}")
        return value

    return parse


def parse_endpoint(text: str, default_port: int = 53) -> Endpoint:
    """``198.18.0.10``, ``198.18.0.11:5353``, ``2001:db8::1`` or ``[2001:db8::1]:53``."""
    host, port = text, str(default_port)
    if text.startswith("["):
        match = re.match(r"^\[([^\]]+)\](?::(\d+))?$", text)
        if not match:
            raise ValueError(f"bad address {text!r} (IPv6 with a port is [ADDR]:PORT)")
        host, port = match.group(1), match.group(2) or port
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"bad address {text!r} (expected an IP address, not a name)") from None
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"bad port in {text!r}")
    return Endpoint(address, int(port))


def parse_upstream(text: str) -> Endpoint | tuple[str, Endpoint]:
    """An ``upstreams`` item: an endpoint, or ``DOMAIN=ENDPOINT`` (``corp.example=198.18.5.53``)."""
    if "=" not in text:
        return parse_endpoint(text)
    domain, address = text.split("=", 1)
    try:
        name = normalize_domain(domain)
    except ValueError:
        raise ValueError(f"bad domain {domain!r} in {text!r}") from None
    return name, parse_endpoint(address)


def parse_container_listen(text: str) -> Endpoint | None:
    """``no``, or an IPv4 address the container runtimes keep in a container's resolv.conf (port 53)."""
    if text.lower() in ("no", "off", "false", "0"):
        return None
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        raise ValueError(f"expected an IPv4 address or no, got {text!r}") from None
    # Docker and Podman drop loopback nameservers (and use Google's instead when none is left); the
    # others cannot be a host's own unicast address.
    if address.is_loopback or address.is_unspecified or address.is_multicast or address == _BROADCAST:
        raise ValueError(f"{address} cannot reach this host from a container (use a link-local or "
                         "other non-loopback unicast address)")
    return Endpoint(address, 53)


_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def parse_network(text: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"bad network {text!r} (expected ADDRESS or ADDRESS/PREFIX)") from None


def parse_ipv4_network(text: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(text, strict=False)
    except ValueError:
        raise ValueError(f"bad IPv4 network {text!r} (expected ADDRESS or ADDRESS/PREFIX)") from None


def parse_ipv4(text: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        raise ValueError(f"bad IPv4 address {text!r}") from None


_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")


def parse_hostname(text: str) -> str:
    name = text.rstrip(".")
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        raise ValueError(f"bad host name {text!r}")
    return name


_IFNAME = re.compile(r"^[^\s/:]{1,15}$")


def parse_ifname(text: str) -> str:
    if not _IFNAME.match(text):
        raise ValueError(f"bad interface name {text!r}")
    return text


def parse_path(text: str) -> str:
    if not text.startswith("/"):
        raise ValueError(f"path must be absolute, got {text!r}")
    return os.path.normpath(text)


def parse_strategy(text: str) -> str:
    if text not in ("race", "hedge"):
        raise ValueError(f"strategy must be race or hedge, got {text!r}")
    return text


def parse_hedge_delay(text: str) -> float | None:
    return None if text == "auto" else parse_duration(text)


def _optional(parse: Callable[[str], object]) -> Callable[[str], object]:
    """An empty value means none (SPEC: ``cache_file =``)."""
    return lambda text: parse(text) if text else None


def _listof(parse: Callable[[str], object]) -> Callable[[str], tuple]:
    """Whitespace-separated items; every bad item is its own message."""

    def parse_list(text: str) -> tuple:
        items, errors = [], []
        for word in text.split():
            try:
                items.append(parse(word))
            except ValueError as exc:
                errors.append(str(exc))
        if errors:
            raise ValueError("; ".join(errors))
        return tuple(items)

    return parse_list


@dataclass(frozen=True)
class Key:
    default: str  # as written in the shipped file, parsed by ``parse``
    parse: Callable[[str], object]
    attr: str | None = None  # dataclass field name when it differs from the key


SCHEMA: dict[str, dict[str, Key]] = {
    "resolver": {
        "listen": Key("127.0.0.35:53", _listof(parse_endpoint)),
        "container_listen": Key("169.254.0.53", parse_container_listen),
        "upstreams": Key("", _listof(parse_upstream)),
        "upstreams_file": Key("/etc/bootres/upstream-resolv.conf", _optional(parse_path)),
        "strategy": Key("hedge", parse_strategy),
        "hedge_delay": Key("auto", parse_hedge_delay),
        "timeout": Key("3s", parse_duration),
        "cache_size": Key("10000", _int_parser(0, 10_000_000)),
        "cache_file": Key("/var/lib/bootres/cache/cache.db", _optional(parse_path)),
        "serve_stale": Key("yes", parse_bool),
        "stale_max_age": Key("3d", parse_duration),
        "stale_answer_after": Key("400ms", parse_duration),
        "boot_stale_after": Key("20ms", parse_duration),
        "hosts_files": Key("/etc/hosts", _listof(parse_path)),
        "allow": Key("127.0.0.0/8 ::1/128", _listof(parse_network)),
        "max_inflight": Key("2048", _int_parser(1, 1_000_000)),
        "prefetch": Key("yes", parse_bool),
        "prefetch_rate": Key("100", _int_parser(1, 1_000_000)),
        "manage_resolv_conf": Key("yes", parse_bool),
        "tcp_connections": Key("256", _int_parser(1, 65535)),
        "tcp_idle_timeout": Key("10s", parse_duration),
        "tcp_output_queue": Key("262144", _int_parser(131072, 64 * 1024 * 1024)),
        "trust_ad": Key("no", parse_bool),
    },
    "hosts": {
        "file": Key("/etc/hosts", _optional(parse_path)),
        "self": Key("yes", parse_bool, attr="self_entry"),
        "router_names": Key("site-router", _listof(parse_hostname)),
        "pin": Key("", _listof(parse_hostname)),
        "refresh_interval": Key("5m", parse_duration),
    },
    "router": {
        "discovery": Key("yes", parse_bool),
        "interfaces": Key("", _listof(parse_ifname)),
        "solicit": Key("yes", parse_bool),
        "install_route": Key("yes", parse_bool),
        "static": Key("", _listof(parse_ipv4)),
        "defaultrouter_file": Key("/etc/defaultrouter", _optional(parse_path)),
        "routers": Key("", _listof(parse_ipv4_network)),
    },
    "service": {
        "state_dir": Key("/run/bootres", parse_path),
        "metrics_file": Key("", _optional(parse_path)),
    },
}

SECTION_TYPES = {
    "resolver": ResolverConfig,
    "hosts": HostsConfig,
    "router": RouterConfig,
    "service": ServiceConfig,
}


@dataclass
class Setting:
    value: str
    path: str
    line: int


# What str.splitlines() breaks at besides "\n" (and "\r\n"): never a line end here.
_STRAY_BREAKS = {
    "\r": "carriage return", "\v": "vertical tab", "\f": "form feed", "\x1c": "file separator",
    "\x1d": "group separator", "\x1e": "record separator", "\x85": "next line (NEL)",
    "\u2028": "line separator", "\u2029": "paragraph separator",
}
_STRAY = re.compile("[" + "".join(_STRAY_BREAKS) + "]")


def numbered_lines(text: str):
    """``(number, line)`` for every line: only "\n" ends one, and a "\r" just before it is dropped."""
    for number, line in enumerate(text.split("\n"), start=1):
        yield number, line[:-1] if line.endswith("\r") else line


def read_ini(path: str, text: str, problems: list[Problem]) -> dict[tuple[str, str], Setting]:
    """One file's settings keyed by (section, key); syntax problems go to ``problems``."""
    settings: dict[tuple[str, str], Setting] = {}
    section: str | None = None
    current: tuple[str, str] | None = None  # the key a continuation line extends
    for number, raw in numbered_lines(text):
        stripped = raw.strip()
        if not stripped:
            continue
        stray = _STRAY.search(raw)
        if stray:  # reported, then read as it stands: an editor may show it as a line break, or not at all
            char = stray.group()
            problems.append(Problem(path, number, f"stray {_STRAY_BREAKS[char]} (U+{ord(char):04X}) in the line: "
                                                  "only a newline ends a line"))
        if stripped[0] in "#;":
            continue
        line = re.split(r"\s[#;]", raw, maxsplit=1)[0].rstrip()
        if raw[0] in " \t":
            if current is None:
                problems.append(Problem(path, number, "indented line continues no key"))
            else:
                settings[current].value = f"{settings[current].value} {line.strip()}".strip()
            continue
        current = None
        if line.startswith("["):
            if not line.endswith("]"):
                problems.append(Problem(path, number, f"bad section header {line!r}"))
                section = None
                continue
            section = line[1:-1].strip()
            if section not in SCHEMA:
                problems.append(Problem(path, number, f"unknown section [{section}]"))
            continue
        if "=" not in line:
            problems.append(Problem(path, number, f"expected 'key = value', got {line!r}"))
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        if section is None:
            problems.append(Problem(path, number, f"key {key!r} is outside any section"))
        elif section not in SCHEMA:
            continue  # the unknown section was reported once, at its header
        elif key not in SCHEMA[section]:
            problems.append(Problem(path, number, f"unknown key {key!r} in [{section}]"))
        elif (section, key) in settings:
            first = settings[(section, key)].line
            problems.append(Problem(path, number, f"duplicate key {key!r} in [{section}] (first on line {first})"))
        else:
            settings[(section, key)] = Setting(value, path, number)
            current = (section, key)
    return settings


def parse(files: list[tuple[str, str]], main_path: str = DEFAULT_PATH) -> Config:
    """Build a Config from (path, text) pairs in override order, or raise ConfigError."""
    problems: list[Problem] = []
    merged: dict[tuple[str, str], Setting] = {}
    for path, text in files:
        merged.update(read_ini(path, text, problems))

    sections: dict[str, dict[str, object]] = {}
    where: dict[tuple[str, str], tuple[str, int]] = {}
    for section, keys in SCHEMA.items():
        values = sections[section] = {}
        for key, spec in keys.items():
            setting = merged.get((section, key))
            text = setting.value if setting else spec.default
            try:
                values[spec.attr or key] = spec.parse(text)
            except ValueError as exc:
                problems.append(Problem(setting.path, setting.line, f"{key}: {exc}"))
            if setting:
                where[(section, key)] = (setting.path, setting.line)

    if not problems:
        _split_upstreams(sections["resolver"])
        problems.extend(_check_combinations(sections, where, main_path))
    if problems:
        order = {path: index for index, (path, _) in enumerate(files)}
        raise ConfigError(sorted(problems, key=lambda p: (order.get(p.path, -1), p.line)))
    return Config(
        **{name: SECTION_TYPES[name](**values) for name, values in sections.items()},
        path=main_path,
        sources=tuple(path for path, _ in files),
    )


def _split_upstreams(resolver: dict[str, object]) -> None:
    """One key, two fields: plain endpoints override the sources, domain items add routes."""
    items = resolver["upstreams"]
    resolver["upstreams"] = tuple(item for item in items if isinstance(item, Endpoint))
    resolver["upstream_domains"] = tuple(item for item in items if not isinstance(item, Endpoint))


def _check_combinations(sections, where, main_path: str) -> list[Problem]:
    """Rules that span keys, reported at the line of the key that broke them."""
    problems = []

    def at(section: str, *keys: str) -> tuple[str, int]:
        """The first of ``keys`` that a file set, so the admin sees the line they wrote."""
        for key in keys:
            if (section, key) in where:
                return where[(section, key)]
        return (main_path, 0)

    resolver = sections["resolver"]
    if not resolver["listen"]:
        problems.append(Problem(*at("resolver", "listen"), "listen: at least one address is needed"))
    container = resolver["container_listen"]
    if container is not None:
        covering = [e for e in resolver["listen"] if e.port == 53 and e.host.version == 4
                    and (e.host == container.host or e.host.is_unspecified)]
        if covering:
            # One socket would be bound twice, and the check of where a query came from would not apply.
            problems.append(Problem(*at("resolver", "container_listen", "listen"),
                                    f"container_listen: {container.host} is already covered by listen {covering[0]}"
                                    " (set container_listen = no, or listen to other addresses)"))
    if resolver["timeout"] <= 0:
        problems.append(Problem(*at("resolver", "timeout"), "timeout: must be more than 0"))
    if resolver["tcp_idle_timeout"] <= 0:
        problems.append(Problem(*at("resolver", "tcp_idle_timeout"), "tcp_idle_timeout: must be more than 0"))
    if resolver["serve_stale"] and resolver["stale_answer_after"] >= resolver["timeout"]:
        problems.append(
            Problem(
                *at("resolver", "stale_answer_after", "timeout"), "stale_answer_after: must be shorter than timeout"
            )
        )
    if resolver["boot_stale_after"] > resolver["stale_answer_after"]:
        problems.append(Problem(*at("resolver", "boot_stale_after", "stale_answer_after"),
                                "boot_stale_after: must not be longer than stale_answer_after"))
    hosts = sections["hosts"]
    if hosts["refresh_interval"] < MIN_REFRESH_INTERVAL:
        # Each refresh asks every upstream for every pin: a typo such as "5ms" must not flood them.
        problems.append(Problem(*at("hosts", "refresh_interval"),
                                f"refresh_interval: must be at least {MIN_REFRESH_INTERVAL:g}s"))
    return problems


def conf_d_paths(main_path: str) -> list[str]:
    """The drop-in snippets that follow the main file, in name order."""
    directory = os.path.join(os.path.dirname(main_path), "conf.d")
    return sorted(glob.glob(os.path.join(glob.escape(directory), "*.conf")))


def read(main_path: str) -> tuple[list[tuple[str, str]], list[tuple[str, bytes]], list[Problem]]:
    """The main file and its conf.d snippets: (path, text) of each, (path, bytes) of each, a problem per unreadable one.

    The bytes are exactly what the text was decoded from (bootres-generator
    keys its cache on them); decoded whole, with no newline translation, so
    read_ini sees every "\r".
    """
    texts, raw, problems = [], [], []
    for path in [main_path, *conf_d_paths(main_path)]:
        try:
            with open(path, "rb") as handle:
                data = handle.read()
            texts.append((path, data.decode("utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            problems.append(Problem(path, 0, f"cannot read: {reason}"))
            continue
        raw.append((path, data))
    return texts, raw, problems


def defaults() -> Config:
    """The configuration of an empty file: SCHEMA's defaults, the only copy of them."""
    return parse([])


def load(main_path: str = DEFAULT_PATH) -> Config:
    """Read the main file and its conf.d snippets; raise ConfigError listing every problem."""
    files, _, problems = read(main_path)
    try:
        config = parse(files, main_path)
    except ConfigError as exc:
        problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return config
