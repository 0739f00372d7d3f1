"""What a reconnect to a node means for its calls: the ones that ended while we were away
are finished from CEL, the ones still up get their history so far, and the ones Asterisk has
no record of ending (it was killed) are closed honestly, as orphaned."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Protocol

from common import events as ev
from common.facts import CallFact, call_id_of
from common.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class CelCatchUp(Protocol):
    """The node's CEL reconciler (telephony/calls/cel.py)."""

    async def sweep(self, live: set[str] | None = None) -> int: ...
    async def backfill(self, linkedids: set[str]) -> None: ...


class OpenCases(Protocol):
    """The case store, as a reconnect reads and closes cases."""

    async def stale_active(self, node: str, live_call_ids: set[str],
                           older_than: timedelta = ...) -> list[str]: ...
    async def apply(self, fact: CallFact) -> object: ...


class Snapshots(Protocol):
    """The node's AMI client: whether it is connected, and what Asterisk has up now."""

    @property
    def connected(self) -> bool: ...
    async def snapshot(self) -> ev.Snapshot: ...


async def linkedids_up(ami: Snapshots) -> set[str] | None:
    """The calls Asterisk has up now (None when it cannot be asked)."""
    if not ami.connected:
        return None
    snap = await ami.snapshot()
    return {c.channel.linkedid for c in snap.channels}


class Reconnect:
    """The call tracker's ``on_resync`` for one node."""

    # A case this young may belong to a call the snapshot was taken too early to show.
    STALE_AFTER = timedelta(seconds=5)

    def __init__(self, node: str, cel: CelCatchUp, cases: OpenCases,
                 live_ids: Callable[[], Awaitable[set[str] | None]] | None = None):
        self.node = node
        self.cel = cel
        self.cases = cases
        self.resyncs = 0
        # What Asterisk has up now (None: it cannot be asked), for the second look.
        self.live_ids = live_ids
        self._rechecks: set[asyncio.Task[None]] = set()

    async def on_resync(self, event: ev.Connected, gone: set[str], live_calls: set[str]
                        ) -> None:
        self.resyncs += 1
        snap = event.snapshot
        if snap is None:
            return
        live_linked = {c.channel.linkedid for c in snap.channels}
        await self.cel.sweep(live=live_linked)
        await self.cel.backfill(live_calls)
        await self._close_stale({call_id_of(self.node, lk) for lk in live_linked},
                                snap.taken_at)
        if self.live_ids is not None:
            # A case too young for this look may be of a call Asterisk lost with its restart
            # and never wrote to CEL (killed before its rows were flushed): nothing else would
            # end it. A second look once it is old enough.
            task = asyncio.create_task(self._recheck(), name=f"recheck-{self.node}")
            self._rechecks.add(task)
            task.add_done_callback(self._rechecks.discard)

    async def _close_stale(self, live: set[str], at: float) -> None:
        stale = await self.cases.stale_active(self.node, live, older_than=self.STALE_AFTER)
        for call_id in stale:
            await self.cases.apply(CallFact("orphaned", call_id, self.node, at,
                                            {"reason": "not in Asterisk after reconnect"},
                                            source="resync"))
        if stale:
            log.warning("cases closed without a recorded end", extra={
                "node": self.node, "cases": len(stale)})

    async def _recheck(self) -> None:
        await asyncio.sleep(self.STALE_AFTER.total_seconds() + 1)
        try:
            assert self.live_ids is not None
            up = await self.live_ids()
            if up is not None:  # AMI away again: its next resync looks
                await self._close_stale({call_id_of(self.node, lk) for lk in up}, time.time())
        except Exception:
            log.exception("second look at open cases failed", extra={"node": self.node})

    async def stop(self) -> None:
        await cancel_and_wait(list(self._rechecks), what=f"rechecks-{self.node}")
