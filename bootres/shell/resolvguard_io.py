"""/etc/resolv.conf: bootres's while it runs, guarded, and a working classic file while it does not.

- **Take over** (start): the file found is saved once to the state
  directory (the copy the package's postrm puts back on removal, byte for
  byte; a leftover of our own never overwrites it), then replaced by
  bootres's file pointing at ``listen`` with the sources' search domains.
  A symlink (resolvconf) is replaced, not written through, so another
  program's file is never touched.  If another local resolver holds the
  path (``bootres.core.resolvguard``), bootres steps aside and says so;
  systemd-resolved's stub asking bootres (the package's resolved.conf.d
  drop-in) puts bootres in the path behind it, and the file is resolved's.
- **Guard** (every half second): a rewrite by another program is logged,
  handed back to the daemon (its nameservers become a source) and undone,
  within the fight limit of ``resolvguard``; our own file, untouched, gets
  the sources' new search domains.
- **Stop**: a classic resolv.conf listing the upstreams bootres was using,
  so the host resolves while bootres is not running and DHCP clients write
  the file again as usual (the dhclient hook stands back when the file is
  not bootres's managed one).

Off the event loop (issue 11): every read and write of these files runs on
one worker thread of this object's own, as plain functions of paths and
bytes, in the order the loop asked for them, so a write whose caller was
cancelled still ends before the next one begins.  Decisions and state stay
on the loop, one operation (take over, check, stop) at a time, each deciding
on what it has just read.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
from typing import TYPE_CHECKING

from bootres.core import resolvguard, sources
from bootres.core.resolvguard import Verdict
from bootres.core.sources import SourceRecord
from bootres.shell import etcfiles_io
from bootres.shell.etcfiles_io import RESOLV_CONF, SAVED
from bootres.shell.fileio import read_bytes

if TYPE_CHECKING:
    from bootres.core import report


class ManagedResolvConf:
    def __init__(self, log: logging.Logger, listen: list[tuple[str, int]],
                 path: str = RESOLV_CONF, saved: str = SAVED, resolved_list: str = resolvguard.RESOLVED_UPSTREAM_LIST,
                 trust_ad: bool = False, writer=None):
        """``writer``: the privileged writer's channel for this object's worker thread (``etcfiles_io``); None:
        the files are written in this process."""
        self.log = log
        self.write = writer or etcfiles_io.LocalWriter(etcfiles_io.Targets(resolv_conf=path, saved=saved,
                                                                         listen=tuple(listen)))
        self.trust_ad = trust_ad  # `options trust-ad` in our file
        self.listen = tuple(listen)
        self.own = frozenset(host for host, _ in listen)
        self.path = path
        self.saved = saved
        self.resolved_list = resolved_list
        self.managing = False  # our file is in place
        self.behind: str | None = None  # the local resolver whose upstream bootres is, holding the file
        self.conflict: str | None = None  # why bootres is not in the path
        self.last_rewrite: report.RewriteStatus | None = None
        self.search: tuple[str, ...] = ()  # what the sources want
        self._written: tuple | None = None  # (search, trust_ad) our file in place was written with
        self._seen: tuple | None = None  # (link target, bytes, resolved's upstream list) last looked at
        self._fights = resolvguard.FightCounter()
        self._turn = asyncio.Lock()  # one take over, check or stop at a time
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="bootres-resolv.conf")  # the files

    def status(self) -> report.ResolvConfStatus:
        from bootres.core import report  # here: the status model is not needed before the first answer

        return report.ResolvConfStatus(path=self.path, managed=True, in_path=self.managing or self.behind is not None,
                                       behind=self.behind, saved=self.saved, conflict=self.conflict,
                                       last_rewrite=self.last_rewrite)

    @property
    def settled(self) -> bool:
        """Taken over, left to the resolver bootres is behind, or given up: nothing for ``take_over`` to do."""
        return self.managing or self.behind is not None or self.conflict is not None

    async def take_over(self, search: tuple[str, ...]) -> None:
        """Save the original (once) and put our file in place, unless a local resolver holds it; OSError/ValueError on failure."""
        async with self._turn:
            self.search = search
            seen = self._seen = await self._on_worker(_look, self.path, self.resolved_list)
            verdict = self._classify(seen)
            if verdict.kind == "behind-resolved":
                self._behind_resolved(verdict)
                return
            if verdict.kind == "local-stub":
                self._step_aside(verdict)
                return
            if verdict.kind != "ours":
                await self._on_worker(self.write, {"op": "resolv.conf", "action": "save"})
            await self._write()
            self.log.info("%s now points at bootres (%s)", self.path, " ".join(h for h, _ in self.listen))

    def set_search(self, search: tuple[str, ...]) -> None:
        """New search domains from the sources: our file, when in place, gets them at the next ``check``."""
        self.search = search

    def set_trust_ad(self, trust_ad: bool) -> None:
        """``[resolver] trust_ad`` after a reload: our file, when in place, follows at the next ``check``."""
        self.trust_ad = trust_ad

    async def check(self, now: float) -> SourceRecord | None:
        """Look at the file again; when another program wrote real nameservers, they come back as a source record.

        Our own file, untouched, is rewritten when the sources' search
        domains changed (OSError/ValueError when that fails; it is tried
        again at the next check).
        """
        async with self._turn:
            if not self.settled:
                return None  # not taken over yet: the daemon retries take_over
            try:
                seen = await self._on_worker(_look, self.path, self.resolved_list)
            except OSError as exc:
                self.log.warning("cannot read %s: %s", self.path, exc.strerror or exc)
                return None
            if seen == self._seen:
                if self.managing and (self.search, self.trust_ad) != self._written:
                    await self._write()
                return None
            self._seen = seen
            verdict = self._classify(seen)
            data = seen[1]
            if verdict.kind == "ours":
                self.managing, self.behind, self.conflict = True, None, None
                return None
            if verdict.kind == "behind-resolved":
                self._behind_resolved(verdict)
                return None
            if verdict.kind == "local-stub":
                self._step_aside(verdict)
                return None
            await self._rewritten(verdict, now)
        try:
            record, _ = sources.read_resolv_conf_record("resolv.conf", f"{self.path} (rewritten by another program)",
                                                        self.path, data)
        except sources.SourceError:
            return None  # garbage: nothing to learn from it
        return record

    async def stop(self, nameservers: list[str], unless_shutting_down: bool = False) -> None:
        """Leave a classic resolv.conf naming ``nameservers`` (the saved original when there are none); OSError on failure.

        ``unless_shutting_down``: ours stays when the system is shutting down
        and bootres.socket is enabled (the writer asks systemd).  The last
        call: the worker thread ends with it.
        """
        try:
            async with self._turn:
                if not self.managing:
                    return
                self.managing = False
                left = await self._on_worker(self.write, {"op": "resolv.conf", "action": "leave",
                                                          "nameservers": list(nameservers), "search": list(self.search),
                                                          "unless_shutting_down": unless_shutting_down})
        finally:
            self._worker.shutdown(wait=False)
        if left == "boot":
            self.log.info("system shutting down: %s left naming bootres, whose sockets the next boot opens first",
                          self.path)
        elif left == "changed":
            self.log.warning("%s was changed by someone else while bootres managed it; left as it is", self.path)
        elif left == "listed":
            self.log.info("%s now lists the nameservers directly: %s", self.path, " ".join(nameservers))
        elif left == "restored":
            self.log.info("%s restored from %s", self.path, self.saved)

    # --- internals, on the loop

    async def _on_worker(self, operation, *args):
        return await asyncio.get_running_loop().run_in_executor(self._worker, operation, *args)

    def _classify(self, seen: tuple[str | None, bytes, bytes | None]) -> Verdict:
        target, data, resolved = seen
        return resolvguard.classify(data.decode("utf-8", "replace"), target, self.own,
                                    None if resolved is None else resolved.decode("utf-8", "replace"))

    async def _write(self) -> None:
        search, trust_ad = self.search, self.trust_ad
        written = await self._on_worker(self.write, {"op": "resolv.conf", "action": "write", "search": list(search),
                                                     "trust_ad": trust_ad})
        content = written.encode("latin-1")  # bytes carried as text (JSON) both ways
        self.managing, self.behind, self.conflict = True, None, None
        self._written = (search, trust_ad)
        self._seen = (None, content, self._seen[2] if self._seen else None)

    async def _rewritten(self, verdict: Verdict, now: float) -> None:
        """Another program's file with nameservers: say so, and put ours back within the fight limit."""
        import datetime  # here, not at start: the first answer need not wait for it

        from bootres.core import report  # here: the status model is not needed before the first answer

        says = f" (the file says {verdict.says!r})" if verdict.says else ""
        self.last_rewrite = report.RewriteStatus(
            at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            nameservers=tuple(verdict.nameservers),
            says=verdict.says,
        )
        self.log.warning("%s was rewritten by another program: nameservers %s%s; they are now a source",
                         self.path, " ".join(verdict.nameservers) or "none", says)
        if self._fights.allow(now):
            try:
                await self._write()
            except (OSError, ValueError) as exc:
                self._out_of_path(f"cannot put bootres's {self.path} back: {getattr(exc, 'strerror', None) or exc}")
            else:
                self.log.info("%s put back: lookups go through bootres again", self.path)
        else:
            self._out_of_path(f"{self.path} keeps being rewritten by another program "
                              f"({resolvguard.FIGHT_LIMIT} times in {resolvguard.FIGHT_WINDOW:.0f} s); "
                              "bootres stopped putting it back and is not in the path")

    def _behind_resolved(self, verdict: Verdict) -> None:
        if self.behind is None:
            self.log.info("%s belongs to systemd-resolved (nameserver %s), which asks bootres: bootres is in the"
                          " path behind it", self.path, " ".join(verdict.nameservers) or "none")
        self.managing, self.behind, self.conflict = False, "systemd-resolved", None

    def _step_aside(self, verdict: Verdict) -> None:
        message = (f"{self.path} belongs to another local resolver (nameserver {' '.join(verdict.nameservers)}"
                   f"{'; ' + verdict.says if verdict.says else ''}); bootres is not in the path")
        self.managing, self.behind = False, None
        if message != self.conflict:
            self.log.warning("%s", message)
        self.conflict = message

    def _out_of_path(self, message: str) -> None:
        self.managing, self.behind = False, None
        if message != self.conflict:
            self.log.error("%s", message)
        self.conflict = message


# --- the file system half, on the worker thread: paths and bytes in, no shared state

def _look(path: str, resolved_list: str) -> tuple[str | None, bytes, bytes | None]:
    """The file's symlink target and bytes, and systemd-resolved's upstream list (None: there is none)."""
    target = os.readlink(path) if os.path.islink(path) else None
    try:  # resolved's own file, small; a broken one only means "does not name bootres"
        with open(resolved_list, "rb") as handle:
            resolved = handle.read(sources.MAX_SOURCE_BYTES)
    except OSError:
        resolved = None
    # Missing, or a dangling link: glibc then asks 127.0.0.1, as for an empty file.
    return target, read_bytes(path) or b"", resolved
