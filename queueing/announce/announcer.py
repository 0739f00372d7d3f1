"""The announcer: follows waiting callers from the call facts (queued, then answered,
abandoned or ended), and when one is due asks Asterisk where the caller stands (QueueStatus),
makes the sentence (espeak-ng, cached by its text) and whispers it to the caller: an AMI
Originate of ``Local/spy@hotline-announce/n``, whose one half plays the sentence and whose
other half whispers it into the caller's channel (ChanSpy ``w``). The caller stays in the
queue, at their place, hearing the music under the sentence; nothing in Asterisk's queue
changes. Each announcement is a fact on the case (``announced``).

Best effort by design: a caller the service cannot announce to (AMI away, Asterisk busy)
waits as before; a restarted service hears the waiting callers again at its resync."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from common.config import AnnounceSection
from common.facts import CallFact
from common.tasks import cancel_and_wait
from queueing.announce.model import announcement, next_due, queue_view

log = logging.getLogger(__name__)

ORIGINATE_CHANNEL = "Local/spy@hotline-announce/n"  # asterisk-conf/extensions.conf.j2
CONTEXT = "hotline-announce"
SOUNDS = "queue"  # the sentences, under the node's sounds/
GONE = ("answered", "abandoned", "ended", "orphaned", "message", "keep_place")


class Ami(Protocol):
    async def send_list(self, action: dict[str, Any], *, timeout: float | None = ...
                        ) -> list[Any]: ...
    async def originate(self, *, channel: str, context: str | None = ...,
                        exten: str | None = ..., timeout_s: float = ...,
                        variables: dict[str, str] | None = ...) -> Any: ...


Speak = Callable[[str, Path], Path]
Recorder = Callable[[CallFact], Awaitable[object]]


@dataclass
class Waiting:
    call_id: str
    node: str
    channel: str
    queue: str
    queued_at: float
    due: float | None
    told: int = 0
    looks: int = 0
    last_at: float | None = None


class Announcer:
    def __init__(self, cfg: AnnounceSection, *, ami_of: Callable[[str], Ami],
                 sounds_of: Callable[[str], Path | None], speak: Speak, record: Recorder,
                 welcome_s_of: Callable[[str], float] = lambda node: 0.0,
                 keep_offer: tuple[float, str] | None = None,
                 clock: Callable[[], float] = time.time, tick_s: float = 0.5):
        self.cfg = cfg
        self.ami_of = ami_of
        self.sounds_of = sounds_of
        self.speak = speak
        self.record = record
        self.welcome_s_of = welcome_s_of
        # Keep my place: after this long the sentence ends with the offer of the key.
        self.keep_offer = keep_offer
        self.clock = clock
        self.tick_s = tick_s
        self.waiting: dict[str, Waiting] = {}
        self._channels: dict[str, str] = {}  # the caller's channel, from ``arrived``
        self._task: asyncio.Task[None] | None = None
        self.announced = 0
        self.failed = 0

    # -- facts --------------------------------------------------------------------------------

    async def on_fact(self, fact: CallFact) -> None:
        """A call-tracker sink: who waits where."""
        if not self.cfg.enabled:
            return
        d = fact.data
        if fact.kind == "arrived" and d.get("channel"):
            self._channels[fact.call_id] = str(d["channel"])
        elif fact.kind == "queued" and d.get("queue"):
            w = self.waiting.get(fact.call_id)
            channel = self._channels.get(fact.call_id)
            if w is not None:
                # Moved on (a key, a widening): told about the new queue at once, as at entry.
                w.queue = str(d["queue"])
                w.looks = 0
                w.due = self.clock()
            elif channel:
                welcome = self.welcome_s_of(fact.node)
                self.waiting[fact.call_id] = Waiting(
                    fact.call_id, fact.node, channel, str(d["queue"]), fact.at,
                    next_due(self.cfg, queued_at=fact.at, welcome_s=welcome, told=0,
                             last_at=None))
        elif fact.kind in GONE:
            self.waiting.pop(fact.call_id, None)
            if fact.kind in ("ended", "orphaned"):
                self._channels.pop(fact.call_id, None)

    # -- life cycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self.cfg.enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name="queue-announcer")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task], what="queue announcer")
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            now = self.clock()
            due = [w for w in self.waiting.values() if w.due is not None and w.due <= now]
            for w in due:
                w.due = None  # one look at a time
            if due:
                await asyncio.gather(*(self._look(w) for w in due))

    async def _look(self, w: Waiting) -> None:
        try:
            await self.announce(w)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failed += 1
            log.warning("queue announcement not made", extra={
                "call_id": w.call_id, "error": str(exc)[:200] or type(exc).__name__})
        finally:
            if w.call_id in self.waiting and w.due is None:
                w.last_at = self.clock()
                w.due = next_due(self.cfg, queued_at=w.queued_at, welcome_s=0.0,
                                 told=max(1, w.told), last_at=w.last_at)

    async def announce(self, w: Waiting) -> bool:
        """Tell ``w`` where they stand, if there is something worth telling."""
        ami = self.ami_of(w.node)
        status = await ami.send_list({"Action": "QueueStatus", "Queue": w.queue}, timeout=5)
        entries = [dict(m) for m in status if m.get("Event") == "QueueEntry"]
        members = [dict(m) for m in status if m.get("Event") == "QueueMember"]
        params = next((dict(m) for m in status if m.get("Event") == "QueueParams"), {})
        view = queue_view(entries, members, params, w.channel)
        w.looks += 1
        said = announcement(self.cfg, view, at_entry=w.looks == 1)
        if said is None:
            return False
        where = self.sounds_of(w.node)
        if where is None:
            return False
        text = said.text
        if self.keep_offer is not None and self.clock() - w.queued_at >= self.keep_offer[0]:
            text += self.keep_offer[1]
        name = hashlib.sha256(text.encode()).hexdigest()[:16]
        await asyncio.to_thread(self.speak, text, where / SOUNDS / f"{name}.wav")
        if w.call_id not in self.waiting:
            return False  # answered meanwhile
        await ami.originate(channel=ORIGINATE_CHANNEL, context=CONTEXT, exten="play",
                            timeout_s=10,
                            variables={"HOTLINE_ANNOUNCE_TO": w.channel,
                                       "HOTLINE_ANNOUNCE": f"{SOUNDS}/{name}"})
        w.told += 1
        self.announced += 1
        with contextlib.suppress(Exception):
            await self.record(CallFact(
                "announced", w.call_id, w.node, self.clock(),
                {"n": w.told, "queue": w.queue, "position": said.position,
                 "expected_s": round(said.expected_s), "sound": f"{SOUNDS}/{name}"},
                source="announce"))
        return True
