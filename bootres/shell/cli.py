"""Command line: parse arguments, call one function, map the outcome to an exit status.

Exit statuses (SPEC): check 0 valid / 2 invalid; status 0 healthy / 1 degraded /
3 not running; query 0 answered / 1 not; run non-zero with a one-line reason
when it cannot start.
"""

from __future__ import annotations

# First (issue 24): a SIGHUP before the daemon's loop takes it over (the
# imports, the configuration: ~100 ms) would end the process without a
# word, SIGHUP's default action.  From here on it is noted instead; ``run``
# hands the note to the daemon, which says so and reloads once started.
# The other commands get the default back.  _signal, the C module under
# signal: signal's enums cost 1 ms more of the window.  (The interpreter's
# own start, ~13 ms before this line, stays a window no Python code closes.)
import _signal

EARLY_SIGHUPS: list[int] = []
_signal.signal(_signal.SIGHUP, lambda signum, _frame: EARLY_SIGHUPS.append(signum))

import sys  # noqa: E402 - after the handler, on purpose
from types import SimpleNamespace  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

from bootres import __version__, config  # noqa: E402

if TYPE_CHECKING:
    import argparse

EXIT_OK, EXIT_FAIL, EXIT_INVALID, EXIT_NOT_RUNNING, EXIT_FORBIDDEN = 0, 1, 2, 3, 4  # 4: LSB's "insufficient privilege"


def build_parser() -> argparse.ArgumentParser:
    import argparse  # here: see service_args

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c", "--config", default=config.DEFAULT_PATH, metavar="PATH",
        help=f"configuration file (default {config.DEFAULT_PATH}); conf.d/*.conf beside it is read too",
    )
    parser = argparse.ArgumentParser(prog="bootres", description="Boot-time resolver resilience shim.")
    parser.add_argument("--version", action="version", version=f"bootres {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", parents=[common], help="run the service in the foreground")
    run.add_argument("--user", metavar="NAME",
                     help="started as root: become this user, with a privileged writer for /etc (the unit's bootres)")
    status = commands.add_parser("status", parents=[common], help="show what the running service is doing")
    status.add_argument("--json", action="store_true", help="one JSON object, for machines")
    commands.add_parser("check", parents=[common], help="validate the configuration without touching anything")
    query = commands.add_parser("query", parents=[common], help="ask the running resolver")
    query.add_argument("name")
    query.add_argument("type", nargs="?", default="A")
    query.add_argument("--json", action="store_true", help="one JSON object, for machines")
    return parser


def cmd_check(args) -> int:
    try:
        cfg = config.load(args.config)
    except config.ConfigError as exc:
        for problem in exc.problems:
            print(problem)
        return EXIT_INVALID
    print(f"{args.config}: valid ({len(cfg.sources)} file{'s' if len(cfg.sources) != 1 else ''} read)")
    return EXIT_OK


def state_dir_of(path: str) -> str:
    """Where the control socket is, even when the configuration has errors.

    An admin halfway through an edit must still reach the running service,
    so on errors ``state_dir`` is taken as written, if it is readable at all.
    """
    try:
        return config.load(path).service.state_dir
    except config.ConfigError:
        pass
    found = config.SCHEMA["service"]["state_dir"].default
    for source in [path, *config.conf_d_paths(path)]:
        try:
            with open(source, encoding="utf-8", newline="") as handle:  # lines as config.load reads them
                setting = config.read_ini(source, handle.read(), []).get(("service", "state_dir"))
            if setting:
                found = config.parse_path(setting.value)
        except (OSError, UnicodeDecodeError, ValueError):
            continue
    return found


def cmd_status(args) -> int:
    import json  # here, not at the top: `bootres run` has no use for it before its first answer

    from bootres import status
    from bootres.core.report import Report, from_json, to_json
    from bootres.shell import control

    try:
        reply = control.request(state_dir_of(args.config), {"cmd": "status"})
    except control.Forbidden as exc:
        print(exc, file=sys.stderr)
        return EXIT_FORBIDDEN
    except control.NotRunning as exc:
        if args.json:
            print(json.dumps({"running": False, "config": args.config, "reason": str(exc)}))
        else:
            print(exc, file=sys.stderr)
        return EXIT_NOT_RUNNING
    try:
        report = from_json(Report, reply)
    except ValueError as exc:  # another version of bootres answering (mid-upgrade), or not bootres at all
        print(f"bootres status: the service's reply cannot be read: {exc}", file=sys.stderr)
        return EXIT_FAIL
    print(json.dumps(to_json(report), indent=2) if args.json else status.render_human(report))
    return EXIT_OK if report.health.healthy else EXIT_FAIL


def cmd_query(args) -> int:
    import json

    from bootres import status
    from bootres.shell import control

    try:
        reply = control.request(state_dir_of(args.config), {"cmd": "query", "name": args.name, "type": args.type})
    except control.Forbidden as exc:
        print(exc, file=sys.stderr)
        return EXIT_FORBIDDEN
    except control.NotRunning as exc:
        print(exc, file=sys.stderr)
        return EXIT_NOT_RUNNING
    print(json.dumps(reply, indent=2) if args.json else status.render_query(reply))
    return EXIT_OK if reply.get("answered") else EXIT_FAIL


def cmd_run(args) -> int:
    try:
        cfg = config.load(args.config)
    except config.ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"bootres: not starting: {len(exc.problems)} problem(s) in the configuration", file=sys.stderr)
        return EXIT_INVALID
    if "asyncio" not in sys.modules and "ssl" not in sys.modules:
        # asyncio imports ssl when it can, which loads libssl and libcrypto:
        # 4.2 MiB of RSS and 3-5 ms before the first answer (docs/benchmarks.md).
        # bootres never speaks TLS; asyncio made without ssl works as on a
        # Python built without it.  Hidden for this one import only: a later
        # importer of ssl (pyroute2 0.9's netlink socket) gets it.
        sys.modules["ssl"] = None
        try:
            import asyncio  # noqa: F401
        finally:
            del sys.modules["ssl"]
    from bootres.shell import daemon

    return daemon.run(cfg, user=getattr(args, "user", None), early_sighups=EARLY_SIGHUPS)


COMMANDS = {"run": cmd_run, "status": cmd_status, "check": cmd_check, "query": cmd_query}


def service_args(argv: list[str]):
    """The arguments of ``run`` as systemd starts it (``run``, ``run -c PATH``, ``run --config[=]PATH``), or None.

    The service's command line skips argparse, which with gettext, locale,
    shutil, bz2 and lzma costs ~4 ms before the first answer
    (bench/startup.py); anything else, ``-h`` included, goes through it.
    """
    if not argv or argv[0] != "run":
        return None
    found = {"config": config.DEFAULT_PATH, "user": None}
    rest = argv[1:]
    while rest:
        option = rest.pop(0)
        key, _, value = option[2:].partition("=") if option.startswith("--") else ("", "", "")
        if option == "-c":
            key = "config"
        if key not in found or (found[key] not in (None, config.DEFAULT_PATH)):
            return None  # anything else, or said twice: argparse says what is wrong
        if not value:
            if not rest or rest[0].startswith("-"):
                return None
            value = rest.pop(0)
        found[key] = value
    return SimpleNamespace(command="run", **found)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = service_args(argv) or build_parser().parse_args(argv)
    if args.command != "run":
        _signal.signal(_signal.SIGHUP, _signal.SIG_DFL)
    return COMMANDS[args.command](args)
