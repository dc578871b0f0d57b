"""errorlog: status's errors list, fed by every warning and by explicit problems that end; changed on the loop only."""

import asyncio
import logging
import threading

from bootres.shell.errorlog import ErrorLog, Problems


def logger(errors: ErrorLog, name: str) -> logging.Logger:
    """A logger as the daemon's: INFO and up, the list among its handlers."""
    log = logging.getLogger(f"bootres.test-errorlog.{name}")
    log.setLevel(logging.INFO)
    log.propagate = False
    log.handlers = [errors]
    return log


def messages(errors: ErrorLog) -> list[str]:
    return [entry.message for entry in errors.entries]


def test_a_problem_is_listed_once_and_leaves_when_solved_while_plain_warnings_stay(caplog):
    errors = ErrorLog()
    log = logger(errors, "topics")
    log.addHandler(caplog.handler)
    route, router = Problems(log, errors), Problems(log, errors)
    log.warning("cannot save the cache to %s: %s", "/var/lib/bootres/cache/cache.db", "No space left on device")
    route.problem("default-route", "cannot install the default route via %s: %s", "198.18.1.1", "Network is down")
    router.problem("no-router", "no default router known")
    assert messages(errors) == ["cannot save the cache to /var/lib/bootres/cache/cache.db: No space left on device",
                                "cannot install the default route via 198.18.1.1: Network is down",
                                "no default router known"]
    route.solved("default-route", "default route via %s installed", "198.18.1.1")
    assert messages(errors) == ["cannot save the cache to /var/lib/bootres/cache/cache.db: No space left on device",
                                "no default router known"]
    # Every line was logged once, the problem too (not a second time by the list's handler).
    assert [r.getMessage() for r in caplog.records] == [
        "cannot save the cache to /var/lib/bootres/cache/cache.db: No space left on device",
        "cannot install the default route via 198.18.1.1: Network is down", "no default router known",
        "default route via 198.18.1.1 installed"]


def test_without_a_list_problems_are_logged_only(caplog):
    log = logger(ErrorLog(), "alone")
    log.handlers = [caplog.handler]
    Problems(log).problem("netlink", "cannot read interfaces and routes over netlink: %s", "Operation not permitted")
    Problems(log).solved("netlink", "netlink readable again")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "cannot read interfaces and routes over netlink: Operation not permitted"),
        (logging.INFO, "netlink readable again")]


def test_warnings_from_worker_threads_reach_the_list_on_the_loop():
    async def scenario():
        errors = ErrorLog()
        errors.attach(asyncio.get_running_loop())
        log = logger(errors, "threads")
        worker = threading.Thread(target=log.warning, args=("from a worker",))
        worker.start()
        worker.join()  # the loop has not run meanwhile: the list is untouched
        assert errors.entries == ()
        await asyncio.sleep(0)
        assert messages(errors) == ["from a worker"]

    asyncio.run(scenario())
