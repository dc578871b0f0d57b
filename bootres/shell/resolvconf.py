"""/etc/resolv.conf: bootres's while it runs, guarded, and a working classic file while it does not.

- **Take over** (start): the file found is saved once to the state
  directory (the copy the package's postrm puts back on removal, byte for
  byte; a leftover of our own never overwrites it), then replaced by
  bootres's file pointing at ``listen`` with the sources' search domains.
  A symlink (resolvconf) is replaced, not written through, so another
  program's file is never touched.  If another local resolver holds the
  path (``bootres.core.resolvguard``), bootres steps aside and says so.
- **Guard** (every half second): a rewrite by another program is logged,
  handed back to the daemon (its nameservers become a source) and undone,
  within the fight limit of ``resolvguard``.
- **Stop**: a classic resolv.conf listing the upstreams bootres was using,
  so the host resolves while bootres is not running and DHCP clients write
  the file again as usual (the dhclient hook stands back when the file is
  not bootres's managed one).
"""

from __future__ import annotations

import logging
import os

from bootres.core import resolvconf, resolvguard, sources
from bootres.core.resolvguard import Verdict
from bootres.core.sources import SourceRecord
from bootres.shell.fileio import atomic_write, read_bytes

RESOLV_CONF = "/etc/resolv.conf"
# debian/bootres.postrm knows this path too: it restores from it on removal.
SAVED = "/var/lib/bootres/resolv.conf.orig"


class ManagedResolvConf:
    def __init__(self, log: logging.Logger, listen: list[tuple[str, int]],
                 path: str = RESOLV_CONF, saved: str = SAVED):
        self.log = log
        self.listen = listen
        self.own = frozenset(host for host, _ in listen)
        self.path = path
        self.saved = saved
        self.managing = False  # our file is in place
        self.conflict: str | None = None  # why bootres is not in the path
        self.last_rewrite: dict | None = None
        self.search: tuple[str, ...] = ()
        self._seen: tuple | None = None  # (link target, bytes) last looked at
        self._fights = resolvguard.FightCounter()

    def status(self) -> dict:
        return {"path": self.path, "managed": True, "in_path": self.managing, "saved": self.saved,
                "conflict": self.conflict, "last_rewrite": self.last_rewrite}

    def original_text(self) -> str:
        """The admin's resolv.conf: the saved copy when one of ours is in place."""
        current = _text(self.path)
        if resolvconf.is_bootres(current) and _exists(self.saved):
            return _text(self.saved)
        return current

    def take_over(self, search: tuple[str, ...]) -> None:
        """Save the original (once) and put our file in place, unless a local resolver holds it; OSError/ValueError on failure."""
        self.search = search
        target, data = self._look()
        verdict = resolvguard.classify(data.decode("utf-8", "replace"), target, self.own)
        if verdict.kind == "local-stub":
            self._step_aside(verdict)
            return
        if verdict.kind != "ours" and not _exists(self.saved):
            self._save()
        self._write()
        self.log.info("%s now points at bootres (%s)", self.path, " ".join(h for h, _ in self.listen))

    def set_search(self, search: tuple[str, ...]) -> None:
        """New search domains from the sources; rewrites our file if it is in place; OSError/ValueError on failure."""
        if search != self.search:
            self.search = search
            if self.managing:
                self._write()

    def check(self, now: float) -> SourceRecord | None:
        """Look at the file again; when another program wrote real nameservers, they come back as a source record."""
        if not self.managing and self.conflict is None:
            return None  # not taken over yet: the daemon retries take_over
        try:
            target, data = self._look()
        except OSError as exc:
            self.log.warning("cannot read %s: %s", self.path, exc.strerror or exc)
            return None
        if (target, data) == self._seen:
            return None
        self._seen = (target, data)
        verdict = resolvguard.classify(data.decode("utf-8", "replace"), target, self.own)
        if verdict.kind == "ours":
            self.managing, self.conflict = True, None
            return None
        if verdict.kind == "local-stub":
            self._step_aside(verdict)
            return None
        import datetime  # here, not at start: the first answer need not wait for it

        says = f" (the file says {verdict.says!r})" if verdict.says else ""
        self.last_rewrite = {
            "at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "nameservers": list(verdict.nameservers),
            "says": verdict.says,
        }
        self.log.warning("%s was rewritten by another program: nameservers %s%s; they are now a source",
                         self.path, " ".join(verdict.nameservers) or "none", says)
        if self._fights.allow(now):
            try:
                self._write()
            except (OSError, ValueError) as exc:
                self._out_of_path(f"cannot put bootres's {self.path} back: {getattr(exc, 'strerror', None) or exc}")
            else:
                self.log.info("%s put back: lookups go through bootres again", self.path)
        else:
            self._out_of_path(f"{self.path} keeps being rewritten by another program "
                              f"({resolvguard.FIGHT_LIMIT} times in {resolvguard.FIGHT_WINDOW:.0f} s); "
                              "bootres stopped putting it back and is not in the path")
        try:
            record, _ = sources.read_resolv_conf_record("resolv.conf", f"{self.path} (rewritten by another program)",
                                                        self.path, data)
        except sources.SourceError:
            return None  # garbage: nothing to learn from it
        return record

    def stop(self, nameservers: list[str]) -> None:
        """Leave a classic resolv.conf naming ``nameservers`` (the saved original when there are none); OSError on failure."""
        if not self.managing:
            return
        self.managing = False
        if not resolvconf.is_bootres(_text(self.path)):
            self.log.warning("%s was changed by someone else while bootres managed it; left as it is", self.path)
            return
        if nameservers:
            original = resolvconf.parse(self.original_text())
            atomic_write(self.path, resolvconf.render_stopped(nameservers, self.search or original.search,
                                                              original.options))
            self.log.info("%s now lists the nameservers directly: %s", self.path, " ".join(nameservers))
        elif _exists(self.saved):
            self._restore_saved()
            self.log.info("%s restored from %s", self.path, self.saved)

    # --- internals

    def _write(self) -> None:
        original = resolvconf.parse(self.original_text())
        content = resolvconf.render_managed(self.listen, self.search or original.search, original.options)
        if os.path.islink(self.path):
            _replace(self.path, lambda temp: atomic_write(temp, content))
        else:
            atomic_write(self.path, content)
        self.managing, self.conflict = True, None
        self._seen = (None, content.encode())

    def _step_aside(self, verdict: Verdict) -> None:
        message = (f"{self.path} belongs to another local resolver (nameserver {' '.join(verdict.nameservers)}"
                   f"{'; ' + verdict.says if verdict.says else ''}); bootres is not in the path")
        self.managing = False
        if message != self.conflict:
            self.log.warning("%s", message)
        self.conflict = message

    def _out_of_path(self, message: str) -> None:
        self.managing = False
        if message != self.conflict:
            self.log.error("%s", message)
        self.conflict = message

    def _look(self) -> tuple[str | None, bytes]:
        target = os.readlink(self.path) if os.path.islink(self.path) else None
        # Missing, or a dangling link: glibc then asks 127.0.0.1, as for an empty file.
        return target, read_bytes(self.path) or b""

    def _save(self) -> None:
        os.makedirs(os.path.dirname(self.saved), exist_ok=True)
        if os.path.islink(self.path):
            target = os.readlink(self.path)
            _replace(self.saved, lambda temp: os.symlink(target, temp))
        else:
            atomic_write(self.saved, read_bytes(self.path) or b"", mode=0o644)

    def _restore_saved(self) -> None:
        if os.path.islink(self.saved):
            target = os.readlink(self.saved)
            _replace(self.path, lambda temp: os.symlink(target, temp))
        else:
            atomic_write(self.path, read_bytes(self.saved) or b"")


def _exists(path: str) -> bool:
    return os.path.lexists(path)


def _text(path: str) -> str:
    try:
        return (read_bytes(path) or b"").decode("utf-8", "replace")
    except OSError:  # e.g. a dangling symlink's target directory is gone
        return ""


def _replace(path: str, create) -> None:
    """Create a new file or link beside ``path`` with ``create(temp)``, then rename it over ``path``.

    Used where ``path`` is (or must become) a symlink, which atomic_write
    would follow instead of replacing.
    """
    temp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.bootres-new")
    if os.path.lexists(temp):
        os.unlink(temp)
    create(temp)
    os.rename(temp, path)
