"""bootres.socket's addresses from ``[resolver] listen`` and ``container_listen``: the systemd generator's parsing
half, and its cache.

systemd runs every generator before it loads any unit, at every boot and
every ``daemon-reload``, and waits for all of them: a generator's time is on
the critical path of every boot.  Python importing ``bootres.config`` takes
30-40 ms here, so the generator systemd runs (``units/bootres-generator``, a
shell script) copies the drop-in the running daemon cached in
/var/lib/bootres when the configuration files are byte for byte the ones it
was rendered from (~2 ms), and runs ``main`` only when they differ.  The
script compares bytes and reads no key: ``bootres.config`` stays the one
parser of the configuration.

The daemon writes the cache (``refresh_cache``), not the generator: a
generator may write only into its output directories, and the root file
system is often still read-only when it runs.

A broken configuration must not break the boot: the drop-in then names the
default ``listen``, and one line per problem says so (``bootres run`` refuses
the same configuration, with the same lines).
"""

from __future__ import annotations

import os
import sys

from bootres import config
from bootres.shell.fileio import atomic_write, read_bytes

DROPIN = os.path.join("bootres.socket.d", "listen.conf")  # under the generator's normal directory
CACHE_DIR = "/var/lib/bootres"
CACHE_KEY = "generator.key"  # the bytes the script builds from the files: "PATH\n" + contents, each in turn
CACHE_DROPIN = "generator.conf"
# "-": without iproute2 the socket still starts (bootres adds the address itself once running); scope host: the
# address is never picked as the source of this host's other traffic. systemd finds "ip" in its own PATH.
ADD_ADDRESS = "-ip address replace {address}/32 dev lo scope host"


def render(resolver: config.ResolverConfig) -> str:
    """The drop-in: a Listen pair per address bootres answers on (``listen``, then ``container_listen``, which
    ExecStartPre puts on lo before the sockets exist: docs/containers.md)."""
    # The empty assignments drop the unit's own default lines: these replace them, never add to them.
    lines = ["# Written by bootres-generator from [resolver] listen and container_listen (bootres.conf and conf.d).",
             "[Socket]", "ListenDatagram=", "ListenStream=", "ExecStartPre="]
    for endpoint in resolver.endpoints:
        lines += [f"ListenDatagram={endpoint}", f"ListenStream={endpoint}"]
    if resolver.container_listen is not None:
        lines.append(f"ExecStartPre={ADD_ADDRESS.format(address=resolver.container_listen.host)}")
    return "\n".join(lines) + "\n"


def configured(main_path: str) -> tuple[config.ResolverConfig, bytes, list[config.Problem]]:
    """``[resolver]`` as configured (the defaults when the configuration has problems), the script's key, the
    problems."""
    # Read once, so the key and the parsed text can never come from two versions of a file.
    files, raw, problems = config.read(main_path)
    key = b"".join(path.encode() + b"\n" + data for path, data in raw)
    if not problems:
        try:
            return config.parse(files, main_path).resolver, key, []
        except config.ConfigError as exc:
            problems = exc.problems
    return config.parse([], main_path).resolver, key, problems


def generate(normal_dir: str, main_path: str) -> list[str]:
    """Write the drop-in; return the lines to log (none when the configuration is valid)."""
    resolver, _, problems = configured(main_path)
    path = os.path.join(normal_dir, DROPIN)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(render(resolver))
    if not problems:
        return []
    default = ", ".join(str(endpoint) for endpoint in resolver.endpoints)
    return [str(problem) for problem in problems] + [
        f"bootres.socket listens on the default {default} until the configuration is fixed"]


def refresh_cache(main_path: str = config.DEFAULT_PATH, cache_dir: str = CACHE_DIR) -> bool:
    """Cache the drop-in for these files (the daemon calls this once running); False when the configuration has problems.

    The key is removed first and written last, so a generator running
    meanwhile never pairs a key with another configuration's drop-in.
    Raises OSError when the cache directory is not writable.
    """
    resolver, key, problems = configured(main_path)
    if problems:
        return False
    key_path, dropin_path = os.path.join(cache_dir, CACHE_KEY), os.path.join(cache_dir, CACHE_DROPIN)
    text = render(resolver).encode()
    if read_bytes(key_path) == key and read_bytes(dropin_path) == text:
        return True
    try:
        os.unlink(key_path)
    except FileNotFoundError:
        pass
    atomic_write(dropin_path, text, mode=0o644)
    atomic_write(key_path, key, mode=0o644)
    return True


def _log(lines: list[str]) -> None:
    """systemd.generator(7): no syslog this early; /dev/kmsg (absent in a container: stderr)."""
    try:
        with open("/dev/kmsg", "w") as kmsg:
            for line in lines:
                kmsg.write(f"<4>bootres-generator: {line}\n")
                kmsg.flush()  # one record per write
    except OSError:
        for line in lines:
            print(f"bootres-generator: {line}", file=sys.stderr)


def main(argv: list[str]) -> int:
    """``bootres-generator NORMAL-DIR [EARLY-DIR LATE-DIR]``; ``BOOTRES_GENERATOR_ROOT`` prefixes /etc (tests)."""
    root = os.environ.get("BOOTRES_GENERATOR_ROOT", "")
    lines = generate(argv[0], root + config.DEFAULT_PATH)
    if lines:
        _log(lines)
    return 0
