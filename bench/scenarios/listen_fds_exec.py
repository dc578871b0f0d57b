"""Exec a program with sockets handed over the way systemd does it (sd_listen_fds(3)).

    python3 listen_fds_exec.py FD,FD,... NAME:NAME:... -- PROGRAM ARGS...

The inherited FDs are moved to 3, 4, ... and LISTEN_FDS, LISTEN_FDNAMES and
LISTEN_PID (this process, which the exec keeps) are set.  The bench's
service manager stand-in (service.py) uses it to give a restarted bootres
the listening sockets from its fd store.  Imports nothing from bench.
"""

import fcntl
import os
import sys

FIRST_FD = 3  # SD_LISTEN_FDS_START
PARKING = 100  # above anything the move could overwrite


def main(argv: list[str]) -> None:
    fds = [int(fd) for fd in argv[1].split(",") if fd]
    names, program = argv[2], argv[4:]
    parked = [fcntl.fcntl(fd, fcntl.F_DUPFD, PARKING) for fd in fds]
    for fd in fds:
        os.close(fd)
    for i, fd in enumerate(parked):
        os.dup2(fd, FIRST_FD + i)  # inheritable, unlike the parked copy
        os.close(fd)
    os.environ.update(LISTEN_FDS=str(len(fds)), LISTEN_FDNAMES=names, LISTEN_PID=str(os.getpid()))
    os.execvp(program[0], program)


if __name__ == "__main__":
    main(sys.argv)
