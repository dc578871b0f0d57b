"""SIGKILL a writer of /etc/hosts at random moments: the file is always one whole version."""

import os
import random
import signal
import time

from bootres.core.etcfiles import HostsEntry, merge_block, render_block
from bootres.shell.fileio import atomic_write

ADMIN = "127.0.0.1\tlocalhost\n" + "".join(f"198.18.{n // 250}.{n % 250 + 1}\tadmin-host-{n}\n" for n in range(4000))


def version(n: int) -> str:
    """A hosts file as StubFiles would write it, with a big block so a write takes a while."""
    entries = [HostsEntry(f"198.19.{n}.{i % 250 + 1}", (f"pinned-{n}-{i}.example.com",)) for i in range(4000)]
    return merge_block(ADMIN, render_block(entries))


def writer(path: str, versions: list[str]) -> None:
    """The child: rewrite the file for ever, cycling through whole versions."""
    n = 0
    while True:
        atomic_write(path, versions[n % len(versions)])
        n += 1


def test_killed_writer_never_leaves_a_partial_hosts_file(tmp_path):
    path = str(tmp_path / "hosts")
    versions = [version(n) for n in range(3)]
    whole = set(versions)
    atomic_write(path, versions[0])
    rng = random.Random(1256)
    kills = mid_write = 0
    deadline = time.monotonic() + 20  # bounded: at most 300 kills or 20 s
    while kills < 300 and time.monotonic() < deadline and mid_write < 40:
        pid = os.fork()
        if pid == 0:  # child
            try:
                writer(path, versions)
            finally:
                os._exit(1)
        time.sleep(rng.uniform(0.0, 0.01))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        kills += 1
        if os.path.exists(os.path.join(tmp_path, ".hosts.bootres-tmp")):
            mid_write += 1  # killed between creating the temporary file and renaming it
        with open(path) as handle:
            assert handle.read() in whole, f"partial file after kill {kills}"
    assert mid_write > 0, "no kill landed mid-write: the test proved nothing"
    # The leftover temporary file is reused, not piled up.
    assert sorted(os.listdir(tmp_path)) in (["hosts"], [".hosts.bootres-tmp", "hosts"])
    print(f"{kills} kills, {mid_write} mid-write, file always whole")
