"""Take over /etc/resolv.conf while bootres runs, and put the original back.

The original is saved in the state directory *before* anything is replaced,
and a leftover managed file (bootres was killed) never overwrites the saved
copy: the original survives any number of crashes until a clean stop, or
the package's postrm, restores it.  A symlinked resolv.conf (resolvconf,
systemd-resolved) is saved and restored as the symlink itself, and is
replaced rather than written through, so another program's file is never
touched.
"""

from __future__ import annotations

import logging
import os

from bootres.core import resolvconf
from bootres.shell.fileio import atomic_write, read_bytes

RESOLV_CONF = "/etc/resolv.conf"
# debian/bootres.postrm knows this path too: it restores from it on removal.
SAVED = "/var/lib/bootres/resolv.conf.orig"


class ManagedResolvConf:
    def __init__(self, log: logging.Logger, path: str = RESOLV_CONF, saved: str = SAVED):
        self.log = log
        self.path = path
        self.saved = saved
        self.managing = False

    def original_text(self) -> str:
        """The admin's resolv.conf: the saved copy when a crash left ours in place."""
        current = _text(self.path)
        if resolvconf.is_managed(current) and _exists(self.saved):
            return _text(self.saved)
        return current

    def original_nameservers(self, own: list[str]) -> list[str]:
        return [ns for ns in resolvconf.nameservers(self.original_text()) if ns not in own]

    def take_over(self, listen: list[tuple[str, int]]) -> None:
        """Save the original (unless already saved) and point resolv.conf at ``listen``; OSError/ValueError on failure."""
        original = self.original_text()
        content = resolvconf.render(original, listen)
        if not (resolvconf.is_managed(_text(self.path)) and _exists(self.saved)):
            self._save()
        if os.path.islink(self.path):
            _replace(self.path, lambda temp: atomic_write(temp, content))
        else:
            atomic_write(self.path, content)
        self.managing = True
        self.log.info("%s now points at %s", self.path, ", ".join(resolvconf.nameservers(content)))

    def restore(self) -> None:
        """Put the original back, if the file is still ours; OSError on failure."""
        if not _exists(self.saved):
            return
        if resolvconf.is_managed(_text(self.path)):
            if os.path.islink(self.saved):
                target = os.readlink(self.saved)
                _replace(self.path, lambda temp: os.symlink(target, temp))
            else:
                atomic_write(self.path, read_bytes(self.saved) or b"")
            self.log.info("%s restored", self.path)
        else:
            self.log.warning("%s was changed by someone else while bootres managed it; left as it is", self.path)
        os.unlink(self.saved)
        self.managing = False

    def _save(self) -> None:
        os.makedirs(os.path.dirname(self.saved), exist_ok=True)
        if os.path.islink(self.path):
            target = os.readlink(self.path)
            _replace(self.saved, lambda temp: os.symlink(target, temp))
        else:
            atomic_write(self.saved, read_bytes(self.path) or b"", mode=0o644)


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
