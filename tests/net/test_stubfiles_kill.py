"""SIGKILL StubFilesService's writer of /etc/hosts at random moments: the file is always one whole version.

The child runs ``stubfiles_service.write_file`` with the in-process writer, the very
job StubFilesService runs on its files thread for each ``WriteHostsBlock`` (the
helper runs the same ``etcfiles_io.handle``): read the file, merge the block,
replace it atomically.
"""

import os
import random
import signal
import time

from bootres.core.etcfiles import HostsEntry, merge_block, render_block
from bootres.shell import etcfiles_io
from bootres.shell.fileio import atomic_write
from bootres.shell.stubfiles_service import write_file

ADMIN = "127.0.0.1\tlocalhost\n" + "".join(f"198.18.{n // 250}.{n % 250 + 1}\tadmin-host-{n}\n" for n in range(4000))


def block(n: int) -> str:
    """A big block, so a write takes a while."""
    return render_block([HostsEntry(f"198.19.{n}.{i % 250 + 1}", (f"pinned-{n}-{i}.example.com",)) for i in range(4000)])


def writer(path: str, blocks: list[str]) -> None:
    """The child: rewrite the block for ever, cycling through the versions."""
    n = 0
    writer = etcfiles_io.LocalWriter(etcfiles_io.Targets(hosts=path))
    while True:
        result = write_file(writer, {"op": "hosts", "path": path, "block": blocks[n % len(blocks)]})
        assert result.error is None, result
        n += 1


def test_killed_writer_never_leaves_a_partial_hosts_file(tmp_path):
    path = str(tmp_path / "hosts")
    blocks = [block(n) for n in range(3)]
    whole = {merge_block(ADMIN, b) for b in blocks}
    atomic_write(path, merge_block(ADMIN, blocks[0]))
    rng = random.Random(1256)
    kills = mid_write = 0
    deadline = time.monotonic() + 20  # bounded: at most 300 kills or 20 s
    while kills < 300 and time.monotonic() < deadline and mid_write < 40:
        pid = os.fork()
        if pid == 0:  # child
            try:
                writer(path, blocks)
            finally:
                os._exit(1)
        # A write checks the block first (~10 ms for 4,000 lines); a child forked from a big test process
        # takes longer to reach its first write (once, in a full run, no kill in 0-40 ms landed mid-write).
        time.sleep(rng.uniform(0.0, 0.08))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        kills += 1
        strays = [name for name in os.listdir(tmp_path) if name.startswith(".hosts.bootres-")]
        if strays:
            mid_write += 1  # killed between creating the temporary file and renaming it
        with open(path) as handle:
            assert handle.read() in whole, f"partial file after kill {kills}"
    assert mid_write > 0, "no kill landed mid-write: the test proved nothing"
    # A leftover temporary file is removed by the next write: they never pile up.
    assert len(os.listdir(tmp_path)) <= 2 and "hosts" in os.listdir(tmp_path)
    print(f"{kills} kills, {mid_write} mid-write, file always whole")
