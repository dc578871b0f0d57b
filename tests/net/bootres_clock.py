"""``python bootres_clock.py SHIFT SYNCED BOOT SAVE_EVERY run ...``: bootres with its clocks and boot made up (test only).

What the cache file's trust rules read, replaced before bootres starts:
the wall clock is ``time.time()`` + SHIFT seconds (the whole process's,
as a clock set wrong at boot would be); SYNCED ``yes``/``no`` is what
adjtimex would say about synchronisation (``real``: ask it); BOOT a name
for this boot (``real``: the kernel's boot ID), so two runs with different
names look like two boots; SAVE_EVERY the periodic cache save's interval
in seconds (0: the shipped one).
"""

import runpy
import sys
import time

shift, synced, boot, save_every = float(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
from bootres.shell import cachefile_io, daemon  # noqa: E402 - after reading our own arguments

if shift:
    real_time = time.time
    time.time = lambda: real_time() + shift
if boot != "real":
    cachefile_io.boot_id = lambda: boot.encode().ljust(16, b"-")[:16]
if synced != "real":
    cachefile_io.clock_synchronized = lambda: synced == "yes"
if save_every:
    daemon.CACHE_SAVE_INTERVAL = save_every
    daemon.TICK = min(daemon.TICK, save_every / 2)  # the periodic work's beat, which the save waits for
sys.argv = ["bootres", *sys.argv[5:]]
runpy.run_module("bootres", run_name="__main__", alter_sys=True)
