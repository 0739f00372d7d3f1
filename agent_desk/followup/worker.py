"""The 回访 worker: finds cases waiting for 回访, calls their callers within the calling hours
(AMI Originate of ``Local/s@hotline-followup-out``: Asterisk dials over the city's trunk and,
once answered, asks the two questions in [hotline-followup]), hears back over FastAGI
(``followup``: answered, the answers, or why not) and drives the case loop with the answers:
办结 when resolved and not unsatisfied, 重办 (a new round to the same department) otherwise.

Restart-safe: every step is a conditional change of the task's row (agent_desk/followup/
store.py), the attempt is claimed before Asterisk is asked to dial, and an attempt that never
reports back counts as not answered after ``attempt_timeout_s``. Numbers are checked with the
callbacks' rules before anything is dialled: a refused number ends the task, saying why."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Protocol

from agent_desk.followup.prompt import intro_text
from agent_desk.followup.schedule import (
    CANCELLED,
    DONE,
    REFUSED,
    Policy,
    after_attempt,
    decide,
)
from agent_desk.followup.store import DialInfo, DueTask, FollowUpStore
from cases.loop.states import Actor, Command
from common.config import FollowUpSection
from common.db import utcnow
from common.errors import DomainError
from common.tasks import cancel_and_wait

log = logging.getLogger(__name__)

ORIGINATE_CHANNEL = "Local/s@hotline-followup-out/n"  # asterisk-conf/extensions.conf.j2
ASK_CONTEXT = "hotline-followup"
GENERAL_INTRO = "followup_intro"  # telephony/asterisk/instance.py makes it at install
SYSTEM = Actor("follow-up-call", "system")
SATISFACTION = {"1": "satisfied", "2": "basic", "3": "unsatisfied"}
# What Asterisk said of an attempt that did not get both answers ([hotline-followup-out]'s
# DIALSTATUS, [hotline-followup]'s NOKEYS / HANGUP).
NOT_ANSWERED = {"NOANSWER": "no_answer", "BUSY": "busy", "CANCEL": "no_answer",
                "CONGESTION": "failed", "CHANUNAVAIL": "failed", "REFUSED": "failed",
                "NOKEYS": "no_keys", "HANGUP": "hung_up"}


class CaseLoopActs(Protocol):
    """The case loop (cases/loop/store.py CaseLoop), as the worker drives it."""

    async def act(self, number: str, actor: Actor, cmd: Command, details: Any = None, *,
                  visible: Any = None, idempotency_key: str | None = None
                  ) -> dict[str, Any]: ...


class Originator(Protocol):
    async def originate(self, *, channel: str, context: str | None = ...,
                        exten: str | None = ..., caller_id: str | None = ...,
                        timeout_s: float = ..., variables: dict[str, str] | None = ...
                        ) -> Any: ...


@dataclass(frozen=True)
class Trunk:
    """Where a city's 回访 calls go out: the trunk and the node it is on."""

    id: str
    node: str


# The callbacks' number rule (agent_desk/callbacks/numbers.py): the digits to dial, or
# DomainError("number_not_allowed").
NumberRule = Callable[[str], str]
# Mandarin speech into a WAV (telephony/asterisk/sounds.py speak).
Speak = Callable[[str, Path], Path]


@dataclass(frozen=True)
class Report:
    task: int
    attempt: int
    event: str
    resolved_key: str = ""
    satisfaction_key: str = ""


def parse_report(headers: dict[str, str]) -> Report | None:
    """AGI(${HOTLINE_AGI}/followup,<task>,<attempt>,<event>[,<key>,<key>])."""
    task, attempt = headers.get("agi_arg_1", ""), headers.get("agi_arg_2", "")
    event = headers.get("agi_arg_3", "").strip().upper()
    if not (task.isdigit() and attempt.isdigit() and event.isalpha() and len(event) <= 16):
        return None
    return Report(int(task), int(attempt), event, headers.get("agi_arg_4", "")[:2],
                  headers.get("agi_arg_5", "")[:2])


def policy_of(cfg: FollowUpSection, tz: tzinfo) -> Policy:
    return Policy(tuple(cfg.periods()), tz, cfg.max_attempts,
                  timedelta(seconds=cfg.retry_after_s), timedelta(seconds=cfg.attempt_timeout_s))


class FollowUpWorker:
    def __init__(self, cfg: FollowUpSection, store: FollowUpStore, loop: CaseLoopActs, *,
                 tz: tzinfo, ami_of: Callable[[str], Originator], number_rule: NumberRule,
                 trunk_of: Callable[[str | None], Trunk | None],
                 sounds_of: Callable[[str], Path | None], speak: Speak | None,
                 caller_id: str, clock: Callable[[], datetime] = utcnow):
        # ``sounds_of``: the node's sound folder (``${HOTLINE_SOUNDS}``) where the prompt
        # naming the case is written, None where the service cannot write it.
        self.cfg = cfg
        self.store = store
        self.loop = loop
        self.policy = policy_of(cfg, tz)
        self.ami_of = ami_of
        self.number_rule = number_rule
        self.trunk_of = trunk_of
        self.sounds_of = sounds_of
        self.speak = speak
        self.caller_id = caller_id
        self.clock = clock
        self.dialled = 0
        self._reports: asyncio.Queue[Report] = asyncio.Queue(10_000)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._ticking = asyncio.Lock()

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._run(), name="followup-worker"),
                           asyncio.create_task(self._hear(), name="followup-reports")]

    async def stop(self, timeout: float = 5.0) -> None:
        """Record the reports already heard (bounded), then stop."""
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reports.join(), timeout)
            await cancel_and_wait(self._tasks, what="follow-up worker")
            self._tasks = []

    async def drain(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._reports.join(), timeout)

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The database away: the next look tries again; nothing is half-done.
                log.warning("follow-up look failed", extra={"error": str(exc)[:200]})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.cfg.poll_s)
            self._wake.clear()

    # -- one look -----------------------------------------------------------------------------

    async def tick(self) -> None:
        """Make the tasks of cases now waiting for 回访, then do what each task's step says."""
        if not self.cfg.enabled:
            return
        async with self._ticking:
            now = self.clock()
            await self.store.sync(now, self.cfg.max_attempts)
            calling = await self.store.calling()
            for task in await self.store.active():
                step = decide(task.view, now, self.policy)
                if step.action == "dial":
                    if calling < self.cfg.concurrent and await self._dial(task, now):
                        calling += 1
                elif step.action == "lost":
                    await self._not_answered(task.id, task.view.attempts, "lost",
                                             task.view.max_attempts, now)
                elif step.action == "give_up":
                    await self._give_up(task, now)
                elif step.action == "cancel":
                    await self.store.finish(task.id, state=CANCELLED, outcome="cancelled",
                                            now=now, reason=step.why)
                elif step.action == "apply":
                    await self._apply(task.id, now)

    async def _dial(self, task: DueTask, now: datetime) -> bool:
        info = await self.store.dial_info(task.id)
        if info is None:
            return False
        try:
            digits = self.number_rule(info.caller or "")
        except DomainError as refused:
            # Never dialled: the task says why.
            await self.store.finish(task.id, state=REFUSED, outcome="refused", now=now,
                                    reason=refused.message)
            log.info("follow-up number refused", extra={"task": task.id, "case": info.case})
            return False
        trunk = self.trunk_of(info.city)
        if trunk is None:
            await self.store.finish(task.id, state=REFUSED, outcome="refused", now=now,
                                    reason=f"no trunk to call out for city {info.city!r}")
            return False
        attempt = await self.store.begin_attempt(task.id, task.view.attempts, now)
        if attempt is None:
            return False  # someone else claimed it
        intro = await self._intro(info, trunk.node)
        before, _, after = self.cfg.dial.replace("{trunk}", trunk.id).partition("{number}")
        try:
            await self.ami_of(trunk.node).originate(
                channel=ORIGINATE_CHANNEL, context=ASK_CONTEXT, exten="s",
                caller_id=f"12345 <{self.caller_id}>", timeout_s=self.cfg.ring_s + 15,
                variables={"HOTLINE_FOLLOWUP": str(task.id),
                           "HOTLINE_FOLLOWUP_ATTEMPT": str(attempt),
                           "HOTLINE_FOLLOWUP_NUMBER": digits,
                           "HOTLINE_FOLLOWUP_DIAL_BEFORE": before,
                           "HOTLINE_FOLLOWUP_DIAL_AFTER": after,
                           "HOTLINE_FOLLOWUP_RING": str(self.cfg.ring_s),
                           "HOTLINE_FOLLOWUP_KEY_S": str(self.cfg.key_timeout_s),
                           "HOTLINE_FOLLOWUP_CID": self.caller_id,
                           "HOTLINE_FOLLOWUP_INTRO": intro})
        except Exception as exc:
            await self._not_answered(task.id, attempt, "failed", task.view.max_attempts,
                                     now, error=str(exc)[:200] or type(exc).__name__)
            return False
        self.dialled += 1
        log.info("follow-up call placed", extra={"task": task.id, "case": info.case,
                                                 "attempt": attempt, "trunk": trunk.id})
        return True

    async def _intro(self, info: DialInfo, node: str) -> str:
        """The prompt naming the case, made now; the general one if it cannot be."""
        where = self.sounds_of(node)
        if where is None or self.speak is None:
            return GENERAL_INTRO
        name = f"case-{info.case}"
        text = intro_text(self.cfg.intro, info.case, info.matter)
        speak = self.speak
        try:
            await asyncio.to_thread(speak, text, where / "followup" / f"{name}.wav")
        except Exception as exc:
            log.warning("follow-up prompt not made; the general one is used",
                        extra={"case": info.case, "error": str(exc)[:200]})
            return GENERAL_INTRO
        return f"followup/{name}"

    async def _not_answered(self, task_id: int, attempt: int, outcome: str,
                            max_attempts: int, now: datetime, **detail: Any) -> None:
        next_at = after_attempt(attempt, max_attempts, now, self.policy)
        if await self.store.finish_attempt(task_id, attempt, outcome, now, next_at, **detail):
            log.info("follow-up attempt not answered", extra={
                "task": task_id, "attempt": attempt, "outcome": outcome})
            self.wake()

    async def _give_up(self, task: DueTask, now: datetime) -> None:
        """No answers after every attempt: the case loop hears 回访 not reached."""
        outcome, reason = "unreached", ""
        if task.view.case_state == "follow_up":
            try:
                await self.loop.act(task.case, SYSTEM, Command("follow_up", reached=False),
                                    idempotency_key=f"followup-{task.id}")
            except DomainError as exc:
                outcome, reason = "recorded", exc.message
        await self.store.finish(task.id, state=DONE, outcome=outcome, now=now, reason=reason)

    async def _apply(self, task_id: int, now: datetime) -> None:
        """The caller's answers drive the case loop: 办结 or 重办."""
        answered = await self.store.answered_task(task_id)
        if answered is None:
            return
        number, resolved, satisfaction = answered
        outcome, reason = "recorded", ""
        try:
            # The idempotency key makes a retry (a restart between here and the task's end)
            # answer the case as it is instead of following it up twice.
            view = await self.loop.act(
                number, SYSTEM, Command("follow_up", resolved=resolved,
                                        satisfaction=satisfaction),
                idempotency_key=f"followup-{task_id}")
            outcome = "closed" if view.get("state") == "closed" else "reopened"
        except DomainError as exc:
            # An operator's 回访 of a case not waiting for it: the answers stay on the task
            # and the timeline; the loop is unchanged.
            reason = exc.message
        await self.store.finish(task_id, state=DONE, outcome=outcome, now=now, reason=reason,
                                expect=("answered",))
        log.info("follow-up answers applied", extra={"task": task_id, "case": number,
                                                     "outcome": outcome})

    # -- the console's side --------------------------------------------------------------------

    async def request(self, number: str, *, by: str) -> dict[str, Any]:
        """An operator's 回访 of a case (whatever its state); the worker looks at once."""
        task = await self.store.request(number, by=by, now=self.clock(),
                                        max_attempts=self.cfg.max_attempts)
        self.wake()
        return task

    async def tasks(self, *, state: str | None = None, visible: Any = None
                    ) -> list[dict[str, Any]]:
        return await self.store.tasks(state=state, visible=visible)

    # -- what Asterisk reports (FastAGI ``followup``) ------------------------------------------

    def answer(self, headers: dict[str, str]) -> None:
        """The FastAGI answering endpoint: the report is queued and Asterisk goes on at once
        (nothing to set); the worker records reports in order."""
        report = parse_report(headers)
        if report is None:
            log.warning("follow-up report unreadable")
            return
        try:
            self._reports.put_nowait(report)
        except asyncio.QueueFull:
            log.error("follow-up reports backlog full: report dropped",
                      extra={"task": report.task})

    async def _hear(self) -> None:
        while True:
            report = await self._reports.get()
            try:
                await self.hear(report)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Not recorded: the attempt times out and is retried.
                log.warning("follow-up report not recorded", extra={
                    "task": report.task, "error": str(exc)[:200]})
            finally:
                self._reports.task_done()

    async def hear(self, r: Report) -> None:
        now = self.clock()
        if r.event == "ANSWER":
            await self.store.attempt_event(r.task, r.attempt, "answered", now)
            return
        task = await self.store.task(r.task)
        if task is None:
            return
        if r.event == "ANSWERS" and r.resolved_key in ("1", "2") and (
                r.satisfaction_key in SATISFACTION):
            if await self.store.answers(r.task, r.attempt, r.resolved_key == "1",
                                        SATISFACTION[r.satisfaction_key], now):
                await self._apply(r.task, now)
            return
        outcome = NOT_ANSWERED.get(r.event, "failed" if r.event != "ANSWERS" else "no_keys")
        await self._not_answered(r.task, r.attempt, outcome, int(task["max_attempts"]), now,
                                 status=r.event.lower(),
                                 keys=f"{r.resolved_key}{r.satisfaction_key}")
