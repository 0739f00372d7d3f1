"""Call tracking for one node, wired: the CEL reconciler, what a reconnect does, and the call
tracker that turns the node's AMI events into call facts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from common.facts import Sink
from telephony.calls.cel import CelReconciler, CheckpointStore, last_cel_id
from telephony.calls.reconcile import OpenCases, Reconnect, Snapshots, linkedids_up
from telephony.calls.tracker import CallTracker


class CaseRecords(CheckpointStore, OpenCases, Protocol):
    """The case store, as call tracking uses it (cases/store.py CaseStore)."""


class CallsPlugin:
    """One node's call tracking. ``catch_up()`` finishes from CEL the calls that ended while
    the service was down (before the AMI client connects); ``start()`` then sweeps CEL
    periodically."""

    def __init__(self, node: str, cel_path: Path, cases: CaseRecords, ami: Snapshots, *,
                 sinks: Sequence[Sink], case_of: Callable[[str], str | None],
                 interval_s: float = 30.0, cel_from_now: bool = False):
        self.node = node
        self.cases = cases
        # A new database on an Asterisk with history: read CEL from now, not from the
        # beginning (otherwise every past call would be imported as a case).
        self.cel_from_now = cel_from_now
        self.cel = CelReconciler(node, cel_path, cases, [cases.apply], interval_s=interval_s,
                                 live_ids=lambda: linkedids_up(ami))
        self.reconnect = Reconnect(node, self.cel, cases, live_ids=lambda: linkedids_up(ami))
        self.tracker = CallTracker(node, sinks, on_resync=self.reconnect.on_resync,
                                   case_of=case_of)

    async def catch_up(self) -> None:
        if self.cel_from_now and await self.cases.get_checkpoint(self.node) == 0:
            await self.cases.set_checkpoint(self.node, max(1, await asyncio.to_thread(
                last_cel_id, self.cel.path)))
        await self.cel.sweep()

    async def start(self) -> None:
        self.cel.start()

    async def stop(self) -> None:
        await self.reconnect.stop()
        await self.cel.stop()
