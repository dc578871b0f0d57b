"""CoreDriver on a real event loop with a small core: input with now, effects to handlers, one timer, stop."""

import asyncio
import logging
from dataclasses import dataclass

from bootres.core.effects import INFO, Log
from bootres.shell.core_driver import CoreDriver


@dataclass(frozen=True)
class Say:
    text: str


@dataclass(frozen=True)
class First:
    text: str


class Core:
    """Records its inputs; emits what it is told to; wants the timer at ``wake``."""

    def __init__(self):
        self.seen: list = []
        self.out: list = []
        self.wake: float | None = None

    def said(self, text: str, now: float) -> None:
        self.seen.append((text, now))
        self.out += [Say(text), First(text), Log(INFO, f"heard {text}")]

    def timer_fired(self, now: float) -> None:
        self.seen.append(("timer", now))
        self.wake = None

    def deadline(self) -> float | None:
        return self.wake

    def drain(self) -> list:
        out, self.out = self.out, []
        return out


def run(steps) -> None:
    asyncio.run(asyncio.wait_for(steps(), 5))


def test_input_before_start_is_taken_but_carried_out_only_from_start(caplog):
    done = []

    async def steps():
        core = Core()
        driver = CoreDriver(core, logging.getLogger("test"), first=First)
        driver.feed(core.said, "early")
        assert core.seen and done == []
        driver.start(asyncio.get_running_loop(), {Say: done.append, First: done.append})
        assert done == [First("early"), Say("early")]  # ``first`` goes first

    with caplog.at_level(logging.INFO):
        run(steps)
    assert "heard early" in caplog.text


def test_the_timer_fires_at_the_deadline_and_the_core_never_sees_it_early():
    async def steps():
        loop = asyncio.get_running_loop()
        core = Core()
        driver = CoreDriver(core, logging.getLogger("test"))
        driver.start(loop, {})
        wake = core.wake = loop.time() + 0.05
        driver.arm()
        for _ in range(100):  # bounded: 100 x 10 ms
            if core.seen:
                break
            await asyncio.sleep(0.01)
        (what, now), = core.seen
        assert what == "timer" and now >= wake

        # A loop may run a timer a hair before its time: the core is told its deadline, not the clock.
        far = core.wake = loop.time() + 60
        driver.arm()
        driver._fired()
        assert core.seen[-1] == ("timer", far)

    run(steps)


def test_after_stop_nothing_is_taken_carried_out_or_armed():
    done = []

    async def steps():
        loop = asyncio.get_running_loop()
        core = Core()
        driver = CoreDriver(core, logging.getLogger("test"))
        driver.start(loop, {Say: done.append, First: done.append})
        core.wake = loop.time() + 0.02
        driver.arm()
        driver.stop()
        driver.feed(core.said, "late")
        core.out.append(Say("queued"))
        driver.pump()
        await asyncio.sleep(0.05)
        assert core.seen == [] and done == [] and not driver.running

    run(steps)
