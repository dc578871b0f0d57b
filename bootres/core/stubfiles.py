"""What goes in /etc/hosts's bootres block and /etc/defaultrouter, when to write them, when to ask DNS.

``StubFiles`` is a sans-I/O core.  The shell (``bootres/shell/stubfiles_service.py``)
feeds it:

- ``start`` with both files as they are at start (``FileText``): last run's
  block gives the pinned names' addresses, this host's and the router's, so
  they survive a reboot with no nameserver up and a normal restart writes
  nothing; last boot's /etc/defaultrouter gives the routers;
- this host's name and search domains (``set_names``), its primary IPv4 and
  global IPv6 address (``set_addresses``), the default routers, most
  preferred first (``set_routers``);
- the outcome of every lookup it asked for (``lookup_done``) and of every
  write (``write_done``);
- ``timer_fired`` once ``deadline()`` has passed;

and collects effects with ``drain()``: ``LookUpPinned``, ``WriteHostsBlock``,
``WriteDefaultRouter`` and ``effects.Log``.  Every method takes ``now``
(monotonic seconds); nothing here reads a clock or a file.

The block, in this order:

- ``self``: this host's names (``etcfiles.self_names``) on one line per
  address family the kernel gives it.  Until the first observation, last
  run's lines; from then on exactly what the kernel says, so a host that
  lost its IPv6 address does not advertise it;
- ``router_names``: the first default router.  With no router known it
  keeps the last one, as /etc/defaultrouter does (next boot's first guess),
  so both files always agree;
- ``pin``: each name's last addresses from DNS, one line per address.

Pinned names are asked at start and every ``refresh_interval``, one lookup
in flight per name, at a random moment (within ``START_SPREAD`` of start,
then up to ``SPREAD`` of the interval early, never late, so a moved name is
still in the block within one interval): hosts that booted together do not
ask the site's nameservers in step for ever.  The lookup goes to the upstreams only, never to the
hosts files (bootres's own block is one of them) nor to a stale cached
answer (``Resolver.ask_upstreams``).  A pin exists for when DNS is wrong or
down, so an answer replaces the addresses and nothing else does:

- no answer (every upstream down, SERVFAIL, timeout): the last addresses
  stay, logged once, asked again after ``retry_interval``;
- NXDOMAIN or no address record: the last addresses stay too, logged once
  as a warning (DNS contradicts the pin: an operator should look), asked
  again after ``refresh_interval``.  ``status`` shows both per name.

Files are written only when their content changes, one write in flight per
file.  A failed write (read-only /etc, full disk) is logged once, shown as
``error`` in that file's ``status`` object, and retried every
``retry_interval``, or at once when the content changes.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Callable

from bootres.core import etcfiles, report
from bootres.core.effects import INFO, WARNING, Log
from bootres.core.etcfiles import HostsEntry, fold

# --- inputs


@dataclass(frozen=True)
class Settings:
    """The [hosts] settings and /etc/defaultrouter's path; a path of None: that file is not kept."""

    hosts_file: str | None
    defaultrouter_file: str | None
    self_entry: bool
    router_names: tuple[str, ...]
    pin: tuple[str, ...]
    refresh_interval: float
    retry_interval: float


@dataclass(frozen=True)
class FileText:
    """A file as the shell read it: its text ("" when missing) and its mtime as ISO-8601 (None when missing)."""

    text: str = ""
    written_at: str | None = None


# --- effects: what the shell is asked to do


@dataclass(frozen=True)
class WriteHostsBlock:
    """Merge ``block`` into ``path`` (``etcfiles.merge_block``) and write it atomically.

    The shell reads the file when it writes, so an admin's edit a moment
    ago is kept; it reports with ``write_done``.
    """

    path: str
    block: str


@dataclass(frozen=True)
class WriteDefaultRouter:
    """Replace ``path`` with ``text`` atomically; reported with ``write_done``."""

    path: str
    text: str


@dataclass(frozen=True)
class LookUpPinned:
    """Ask the upstreams for ``name``'s A and AAAA (no hosts files, no stale answers); reported with ``lookup_done``."""

    name: str


# --- state

NOT_ASKED = "not asked yet"
ANSWERED = "answered"
NO_ADDRESS = "no address"  # NXDOMAIN, or the name has no A or AAAA
NO_ANSWER = "no answer"  # no upstream answered: down, SERVFAIL, timeout
START_SPREAD = 1.0  # seconds: the first lookups wait up to this long after start
SPREAD = 0.1  # each later lookup comes up to this share of its interval early


@dataclass
class _Pin:
    name: str  # as configured; compared folded
    addresses: tuple[str, ...] = ()
    confirmed_at: float | None = None  # when DNS last gave them; None: from last run's block, or none yet
    lookup: str = NOT_ASKED
    due: float | None = None  # next lookup; None while one is in flight


@dataclass
class _File:
    kind: str  # "hosts" or "defaultrouter"
    path: str
    on_disk: str | None  # what we know the file holds (the block, or the whole defaultrouter file)
    written_at: str | None
    writing: str | None = None  # the content of the write in flight
    error: str | None = None  # why the last write failed, until one succeeds
    failed: str | None = None  # the content that failed
    retry_at: float | None = None


def _address_key(text: str) -> tuple:
    address = ipaddress.ip_address(text)
    return (address.version, address)


def _canonical(addresses: list[str]) -> tuple[str, ...]:
    """Distinct addresses in canonical text, IPv4 first, each family in numeric order; junk dropped."""
    found = set()
    for text in addresses:
        try:
            found.add(str(ipaddress.ip_address(text)))
        except ValueError:
            continue
    return tuple(sorted(found, key=_address_key))


def _summary(addresses: tuple[str, ...]) -> str:
    return " ".join(addresses) if addresses else "nothing"


def _describe(kind: str, content: str) -> str:
    """What a write put in the file, for its log line."""
    if kind == "hosts":
        count = len(etcfiles.parse_block(content))
        return f"{count} entr{'y' if count == 1 else 'ies'} in the block"
    return " ".join(content.split())


class StubFiles:
    """The block's and /etc/defaultrouter's content, the pinned names' lookups and the writes; see the module docstring."""

    def __init__(self, settings: Settings, *, spread: Callable[[], float], hostname: str = "",
                 search: tuple[str, ...] = ()):
        """``spread``: a random number in [0, 1) for each lookup's delay (``random.random``; tests fix it)."""
        self.settings = settings
        self._spread = spread
        self._hostname = hostname
        self._search = tuple(search)
        self._observed: tuple[str, ...] | None = None  # this host's addresses per the kernel; None: not yet told
        self._recovered_self: tuple[str, ...] = ()  # last run's self lines, used until the kernel speaks
        self._routers: tuple[str, ...] = ()  # the last non-empty router list
        self._block_router: str | None = None  # last run's router line, while no router list is known
        self._pins: dict[str, _Pin] = {fold(name): _Pin(name) for name in settings.pin}
        self._asking: set[str] = set()  # folded names with a lookup in flight, pinned or not any more
        self._files: dict[str, _File] = {}  # "hosts", "defaultrouter"
        self._started = False
        self._effects: list = []

    # --- inputs

    def start(self, now: float, hosts: FileText, defaultrouter: FileText) -> None:
        """Recover last run's state from both files, then look every pin up and write what changed."""
        self._recover(etcfiles.parse_block(hosts.text))
        if not self._routers:
            self._routers = tuple(str(r) for r in etcfiles.parse_defaultrouter(defaultrouter.text))
        settings = self.settings
        if settings.hosts_file:
            block = etcfiles.current_block(hosts.text)
            self._files["hosts"] = _File("hosts", settings.hosts_file, block, hosts.written_at)
        if settings.defaultrouter_file:
            text, written_at = defaultrouter.text, defaultrouter.written_at
            self._files["defaultrouter"] = _File("defaultrouter", settings.defaultrouter_file, text, written_at)
        for pin in self._pins.values():
            pin.due = now + START_SPREAD * self._spread()
        self._started = True
        self._update(now)

    def reconfigure(self, settings: Settings, now: float) -> None:
        """New settings: a new pin is looked up at once, a dropped one leaves the block, a new path is written."""
        self.settings = settings
        pins = {}
        for name in settings.pin:
            pin = self._pins.get(fold(name)) or _Pin(name, due=now)
            pin.name = name
            if pin.due is not None:
                pin.due = min(pin.due, now + settings.refresh_interval)
            pins[fold(name)] = pin
        self._pins = pins
        if self._started:
            for kind, path in (("hosts", settings.hosts_file), ("defaultrouter", settings.defaultrouter_file)):
                if path is None:
                    self._files.pop(kind, None)
                elif kind not in self._files or self._files[kind].path != path:
                    self._files[kind] = _File(kind, path, None, None)  # not read: written whatever it holds
        self._update(now)

    def set_names(self, hostname: str, search: tuple[str, ...], now: float) -> None:
        """This host's name and the search domains in use (the first one completes a short name)."""
        self._hostname, self._search = hostname, tuple(search)
        self._update(now)

    def set_addresses(self, ipv4: str | None, ipv6: str | None, now: float) -> None:
        """This host's primary IPv4 and global IPv6 address now (None: it has none)."""
        self._observed = tuple(address for address in (ipv4, ipv6) if address)
        self._update(now)

    @property
    def routers(self) -> tuple[str, ...]:
        """The routers the files name: /etc/defaultrouter's after ``start``, then the last non-empty list."""
        return self._routers

    def set_routers(self, routers: list[str] | tuple[str, ...], now: float) -> None:
        """The default routers, most preferred first; an empty list keeps the last ones (next boot's guess)."""
        if routers:
            self._routers = tuple(routers)
        self._update(now)

    def lookup_done(self, name: str, addresses: list[str] | None, now: float) -> None:
        """The upstreams' A and AAAA for ``name``: addresses, [] (NXDOMAIN or none), or None (no answer)."""
        key = fold(name)
        self._asking.discard(key)
        pin = self._pins.get(key)
        if pin is None:  # unpinned while it was asked
            self._update(now)
            return
        settings = self.settings
        found = None if addresses is None else _canonical(addresses)
        if found is None:
            delay = min(settings.retry_interval, settings.refresh_interval)
            if pin.lookup != NO_ANSWER:
                self._log(INFO, f"pinned name {pin.name}: no nameserver answered; keeping "
                                f"{_summary(pin.addresses)}, asking again every {delay:g} s")
            pin.lookup = NO_ANSWER
            pin.due = self._after(now, delay)
        elif not found:
            if pin.lookup != NO_ADDRESS:
                self._log(WARNING, f"pinned name {pin.name} has no address in DNS (NXDOMAIN or no A/AAAA record); "
                                   f"keeping {_summary(pin.addresses)}")
            pin.lookup = NO_ADDRESS
            pin.due = self._after(now, settings.refresh_interval)
        else:
            if found != pin.addresses:
                was = f" (was {' '.join(pin.addresses)})" if pin.addresses else ""
                self._log(INFO, f"pinned name {pin.name} now {' '.join(found)}{was}")
            elif pin.lookup == NO_ADDRESS:
                self._log(INFO, f"pinned name {pin.name} has an address in DNS again: {' '.join(found)}")
            pin.addresses, pin.confirmed_at, pin.lookup = found, now, ANSWERED
            pin.due = self._after(now, settings.refresh_interval)
        self._update(now)

    def write_done(self, path: str, error: str | None, now: float, *, written_at: str | None = None,
                   changed: bool = True) -> None:
        """The write of ``path`` is over: ``error`` is why it failed (e.g. "Read-only file system") or None.

        ``written_at``: the file's mtime as ISO-8601 after a success;
        ``changed``: False when the file already held that content.
        """
        file = next((f for f in self._files.values() if f.path == path and f.writing is not None), None)
        if file is None:  # a path reconfigure dropped
            return
        content, file.writing = file.writing, None
        if error is None:
            if file.error is not None:
                self._log(INFO, f"{path} writable again")
            file.on_disk, file.written_at = content, written_at or file.written_at
            file.error = file.failed = file.retry_at = None
            if changed:
                self._log(INFO, f"{path} written: {_describe(file.kind, content)}")
        else:
            reason = f"cannot write {path}: {error}"
            if file.error is None:
                self._log(WARNING, f"{reason}; retrying every {self.settings.retry_interval:g} s")
            file.error, file.failed, file.retry_at = reason, content, now + self.settings.retry_interval
        self._update(now)

    def timer_fired(self, now: float) -> None:
        self._update(now)

    # --- outputs

    def deadline(self) -> float | None:
        if not self._started:
            return None
        times = [pin.due for key, pin in self._pins.items() if pin.due is not None and key not in self._asking]
        times += [f.retry_at for f in self._files.values() if f.retry_at is not None and f.writing is None]
        return min(times, default=None)

    def drain(self) -> list:
        effects, self._effects = self._effects, []
        return effects

    def entries(self) -> list[HostsEntry]:
        """The block's lines, in order."""
        settings = self.settings
        entries = []
        names = self._self_names()
        entries += [HostsEntry(address, names) for address in self._self_addresses()]
        router = self._routers[0] if self._routers else self._block_router
        if router and settings.router_names:
            entries.append(HostsEntry(router, settings.router_names))
        for pin in self._pins.values():
            entries += [HostsEntry(address, (pin.name,)) for address in pin.addresses]
        return entries

    def status(self, now: float) -> report.FilesStatus:
        """The SPEC's ``files`` object; a file whose last write failed has ``error``."""
        hosts, router_file = self._files.get("hosts"), self._files.get("defaultrouter")
        return report.FilesStatus(
            hosts=report.HostsFileStatus(
                path=self.settings.hosts_file,
                written_at=hosts.written_at if hosts else None,
                entries=len(self.entries()),
                self=report.SelfStatus(tuple(self._self_names()), tuple(self._self_addresses())),
                pinned=tuple(self._pin_status(pin, now) for pin in self._pins.values()),
                error=hosts.error if hosts else None,
            ) if self.settings.hosts_file else None,
            defaultrouter=report.RouterFileStatus(
                path=self.settings.defaultrouter_file,
                written_at=router_file.written_at if router_file else None,
                content=tuple(self._routers),
                error=router_file.error if router_file else None,
            ) if self.settings.defaultrouter_file else None,
        )

    # --- internals

    def _after(self, now: float, interval: float) -> float:
        return now + interval * (1 - SPREAD * self._spread())

    def _self_names(self) -> tuple[str, ...]:
        return etcfiles.self_names(self._hostname, self._search) if self.settings.self_entry else ()

    def _self_addresses(self) -> tuple[str, ...]:
        if not self._self_names():
            return ()
        return self._recovered_self if self._observed is None else self._observed

    def _recover(self, entries: list[HostsEntry]) -> None:
        """Last run's self, router and pinned addresses from the block it wrote (names folded by parse_block)."""
        self_names = tuple(fold(n) for n in etcfiles.self_names(self._hostname, self._search))
        router_names = tuple(fold(n) for n in self.settings.router_names)
        recovered: dict[int, str] = {}  # one address per family, as the block holds them
        for entry in entries:
            version = ipaddress.ip_address(entry.address).version
            if self_names and entry.names == self_names:
                recovered.setdefault(version, entry.address)
            elif router_names and entry.names == router_names and version == 4 and self._block_router is None:
                self._block_router = entry.address
            for name in entry.names:
                pin = self._pins.get(name)
                if pin is not None and entry.address not in pin.addresses:
                    pin.addresses = tuple(sorted((*pin.addresses, entry.address), key=_address_key))
        self._recovered_self = tuple(recovered[v] for v in sorted(recovered))

    def _update(self, now: float) -> None:
        """Ask for every pin that is due and write every file whose content should change."""
        if not self._started:
            return
        for key, pin in self._pins.items():
            if pin.due is not None and pin.due <= now and key not in self._asking:
                pin.due = None
                self._asking.add(key)
                self._effects.append(LookUpPinned(pin.name))
        hosts = self._files.get("hosts")
        if hosts is not None:
            self._write(hosts, etcfiles.render_block(self.entries()), now, WriteHostsBlock)
        router_file = self._files.get("defaultrouter")
        if router_file is not None and self._routers:
            # With no router known, the file keeps the last one: it is next boot's first guess.
            self._write(router_file, etcfiles.render_defaultrouter(self._routers), now, WriteDefaultRouter)

    def _write(self, file: _File, content: str, now: float, effect: type) -> None:
        if file.writing is not None:
            return  # its result decides again
        if file.error is None:
            if content == file.on_disk:
                return
        elif content == file.failed and now < file.retry_at:
            return
        file.writing = content
        self._effects.append(effect(file.path, content))

    def _pin_status(self, pin: _Pin, now: float) -> report.PinStatus:
        if pin.confirmed_at is not None:
            source = "dns"
        else:
            source = "last block" if pin.addresses else None
        return report.PinStatus(
            name=pin.name,
            addresses=tuple(pin.addresses),
            source=source,
            confirmed_s_ago=None if pin.confirmed_at is None else round(now - pin.confirmed_at, 1),
            last_lookup=pin.lookup,
            next_lookup_in_s=(None if pin.due is None or fold(pin.name) in self._asking
                              else round(max(0.0, pin.due - now), 1)),
        )

    def _log(self, level: int, message: str) -> None:
        self._effects.append(Log(level, message))
