"""The composition root's life cycle (common/plugin.py) and the Redis-away reporting of the
live state's writers (telephony/live/recovery.py): pure logic, no real parts."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from common.facts import CallFact
from common.plugin import Plugin, Steps, start_all, stop_all
from telephony.live.recovery import RedisHealth


class Recorded:
    def __init__(self, name: str, log: list[str], *, fail_stop: bool = False) -> None:
        self.name = name
        self.log = log
        self.fail_stop = fail_stop

    async def start(self) -> None:
        self.log.append(f"start {self.name}")

    async def stop(self) -> None:
        self.log.append(f"stop {self.name}")
        if self.fail_stop:
            raise RuntimeError("stuck")


async def test_plugins_start_in_order_and_stop_in_reverse_even_past_one_that_fails():
    log: list[str] = []
    plugins: list[Plugin] = [Recorded("a", log), Recorded("b", log, fail_stop=True),
                             Recorded("c", log)]
    await start_all(plugins)
    await stop_all(plugins)
    assert log == ["start a", "start b", "start c", "stop c", "stop b", "stop a"]


async def test_steps_run_only_the_steps_given():
    log: list[str] = []

    async def close() -> None:
        log.append("closed")

    store = Steps("case store", stop=close)
    await store.start()
    await store.stop()
    assert log == ["closed"]


async def test_a_sink_with_redis_away_reports_it_and_does_not_raise():
    health = RedisHealth()

    async def live(fact: CallFact) -> None:
        raise RedisConnectionError("refused")

    sink = health.guarded("live state", live)
    await sink(CallFact("arrived", "node1:1.1", "node1", 0.0, {}))
    assert health.dirty and not health.down


async def test_other_failures_of_a_guarded_sink_are_not_hidden():
    health = RedisHealth()

    async def broken(fact: CallFact) -> None:
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        await health.guarded("live state", broken)(CallFact("ended", "n:1", "n", 0.0, {}))
    assert not health.dirty
