"""Missed-call callbacks as a worker on call facts: every caller nobody answered gets a
callback task, with or without the web console (``hotline serve --no-web``): who hung up while
queued, left a message or asked for a callback when nobody was there, or hung up before the
queue (during a prompt). Keep-my-place callers are called back by Asterisk itself.

The case store calls ``on_fact`` once a fact is on its case (``CaseStore.after_apply``), so
the task always finds its case and the caller's number. Facts from every source count: a call
abandoned while the service was away comes back from Asterisk's CEL (source ``cel``) and is
called back too. One task per call: the store makes at most one per case, and a call already
handled here is not looked up again when the CEL sweep repeats its facts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from common.facts import CallFact
from common.tasks import cancel_and_wait

log = logging.getLogger(__name__)

# Calls remembered as handled (a CEL sweep repeats the facts of recent calls); then forgotten,
# the store's one task per case still holds.
REMEMBERED_CALLS = 100_000


# The facts that make a callback task, and the reason the task gives. ``ended`` covers the
# callers who hung up before any queue (during a menu, a prompt): the store makes tasks only
# for calls nobody answered, one per case (the first reason wins).
REASONS = {"abandoned": "abandoned", "message": "message",
           "callback_requested": "callback_requested", "ended": "dropped",
           # Keep my place reached nobody (its attempts, or no agent took the place).
           "keep_place_failed": "keep_place_failed"}


class CallbackTasks(Protocol):
    """Where callback tasks are kept (agent_desk.store.ConsoleStore)."""

    async def callback_for_call(self, call_id: str, max_attempts: int, reason: str = ...
                                ) -> dict[str, Any] | None: ...

    async def calls_without_callback(self, since: datetime, limit: int = ...) -> list[str]: ...

    async def unreached_follow_ups(self, since: datetime, limit: int = ...) -> list[int]: ...

    async def callback_for_case(self, case_id: int, max_attempts: int, reason: str
                                ) -> dict[str, Any] | None: ...


class CallbackWorker:
    """Abandoned call → one callback task, created off the case writer's path (one task of
    its own, in order)."""

    def __init__(self, tasks: CallbackTasks, *, max_attempts: int,
                 max_age_s: float = 86_400.0, clock: Callable[[], float] = time.time,
                 poll_s: float = 30.0):
        self.tasks = tasks
        self.max_attempts = max_attempts
        # A first import of an Asterisk's CEL history must not turn months of old missed
        # calls into callbacks: only calls abandoned within this long are called back.
        self.max_age_s = max_age_s
        self.clock = clock
        self.callbacks_created = 0
        self._handled: dict[str, None] = {}  # call ids, oldest first
        self._calls: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        # 回访 calls that reached nobody are not call facts: looked for every ``poll_s``.
        self.poll_s = poll_s
        self._poll: asyncio.Task[None] | None = None

    async def on_fact(self, fact: CallFact) -> None:
        """A fact now on its case (a CaseStore.after_apply hook)."""
        if fact.kind == "answered":
            # An answered call never gets a callback task (callback_for_call says no): its
            # end need not ask the database (a transaction per call saved).
            self._remember(fact.call_id)
            return
        reason = REASONS.get(fact.kind)
        # A keep-my-place call was handled at its end (no task then): it fails later.
        handled = fact.call_id + ("#keep" if reason == "keep_place_failed" else "")
        if reason is None or handled in self._handled:
            return
        if self.clock() - fact.at > self.max_age_s:
            return
        self._remember(handled)
        self._calls.put_nowait((fact.call_id, reason))

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="callback-worker")
            # A worker stopped between a call's end and its task (a crash, a kill) makes the
            # task now: calls ended unanswered lately whose case has none.
            try:
                since = datetime.fromtimestamp(self.clock() - self.max_age_s, UTC)
                missed = await self.tasks.calls_without_callback(since)
            except Exception as exc:
                log.warning("callback tasks not checked at start",
                            extra={"error": str(exc) or type(exc).__name__})
                missed = []
            for call_id in missed:
                if call_id not in self._handled:
                    self._remember(call_id)
                    self._calls.put_nowait((call_id, "dropped"))
        if self._poll is None:
            self._poll = asyncio.create_task(self._follow_ups(), name="callback-follow-ups")

    async def stop(self, timeout: float = 5.0) -> None:
        """Create the tasks still queued (bounded), then stop."""
        if self._poll is not None:
            await cancel_and_wait([self._poll], what="callback follow-ups")
            self._poll = None
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await self.drain(timeout)
            await cancel_and_wait([self._task], what="callback worker")
            self._task = None

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until every abandoned call heard so far has its task (or failed to)."""
        await asyncio.wait_for(self._calls.join(), timeout)

    async def _follow_ups(self) -> None:
        while True:
            await self.follow_ups_once()
            await asyncio.sleep(self.poll_s)

    async def follow_ups_once(self) -> int:
        """A task for each case whose 回访 reached nobody lately (a person calls instead)."""
        made = 0
        try:
            since = datetime.fromtimestamp(self.clock() - self.max_age_s, UTC)
            for case_id in await self.tasks.unreached_follow_ups(since):
                task = await self.tasks.callback_for_case(case_id, self.max_attempts,
                                                          "followup_failed")
                if task:
                    made += 1
                    self.callbacks_created += 1
                    log.info("callback task created",
                             extra={"task": task["id"], "case": task["case"]})
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("callback tasks for 回访 not made",
                        extra={"error": str(exc) or type(exc).__name__})
        return made

    def _remember(self, call_id: str) -> None:
        self._handled[call_id] = None
        if len(self._handled) > REMEMBERED_CALLS:
            del self._handled[next(iter(self._handled))]

    async def _run(self) -> None:
        while True:
            call_id, reason = await self._calls.get()
            try:
                await self._create(call_id, reason)
            finally:
                self._calls.task_done()

    async def _create(self, call_id: str, reason: str) -> None:
        try:
            task = await self.tasks.callback_for_call(call_id, self.max_attempts, reason)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The database is away: a repeated fact (the CEL sweep) tries again.
            self._handled.pop(call_id, None)
            log.warning("callback task not created",
                        extra={"call_id": call_id, "error": str(exc) or type(exc).__name__})
            return
        if task:  # None: no case or no caller number; {}: made already
            self.callbacks_created += 1
            log.info("callback task created", extra={"task": task["id"], "case": task["case"]})
