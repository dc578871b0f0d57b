"""``bootres`` with a fault injected into the second of the reload's three steps (tests/shell/test_daemon.py).

The stub files' preparation for a new configuration raises at the first
reload, as a bug of ours or a failing read would; later reloads go through.
"""

import sys

from bootres.shell import cli, stubfiles_service

prepare = stubfiles_service.StubFilesService.prepare_reconfigure
calls = 0


def failing_once(self, hosts, router):
    global calls
    calls += 1
    if calls == 1:
        raise OSError(5, "injected fault")
    return prepare(self, hosts, router)


stubfiles_service.StubFilesService.prepare_reconfigure = failing_once
sys.exit(cli.main(sys.argv[1:]))
