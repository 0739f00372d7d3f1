"""Keep my place (排队回呼): what Asterisk reports of its placeholders, as facts on the
caller's case, and the whisper naming the case that the agent hears.

The placeholders live in Asterisk ([hotline-keep-place]): they keep the caller's place while
the service is away. Each step reports over FastAGI (``keep``): ``TAKEN`` (an agent took the
place), then the dial's DIALSTATUS (ANSWER: the caller is on the line; otherwise tried again
later, up to the attempts), or ``UNTAKEN`` (no agent in ``max_wait_s``). The facts are keyed
by attempt and step (``keep_place_2_noanswer``), so a repeated report counts once; the last
failed step adds ``keep_place_failed`` (a callback task follows, agent_desk/callbacks)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from common.facts import CallFact, call_id_of
from common.tasks import cancel_and_wait

log = logging.getLogger(__name__)

ROUTE = "keep"  # the FastAGI path the dialplan reports to
PROMPTS = "keep"  # under the node's sounds/: case-<number>.wav

Recorder = Callable[[CallFact], Awaitable[object]]
Speak = Callable[[str, Path], Path]


# Its placeholders' channels (asterisk-conf/extensions.conf.j2 [hotline-keep-place]) and the
# CEL user event each step also writes: "<caller's linkedid>|<attempt>|<step>|<last>".
PLACEHOLDER = "Local/hold@hotline-keep-place"
CEL_EVENT = "HOTLINE_KEEP_ATTEMPT"


def report_facts(node: str, headers: dict[str, str], at: float, source: str = "keep"
                 ) -> list[CallFact]:
    """AGI(${HOTLINE_AGI}/keep,<caller's linkedid>,<attempt>,<step>,<last>) as facts."""
    linkedid = headers.get("agi_arg_1", "")[:64]
    attempt = headers.get("agi_arg_2", "")
    step = headers.get("agi_arg_3", "").upper()[:16]
    last = headers.get("agi_arg_4", "") == "1"
    if not linkedid or not attempt.isdigit() or not step.replace("_", "").isalnum():
        return []
    cid = call_id_of(node, linkedid)
    n = int(attempt)
    facts = [CallFact(f"keep_place_{n}_{step.lower()}", cid, node, at,
                      {"attempt": n, "step": step}, source)]
    if step == "ANSWER":
        facts.append(CallFact("keep_place_reached", cid, node, at, {"attempt": n}, source))
    elif last and step != "TAKEN":
        facts.append(CallFact("keep_place_failed", cid, node, at,
                              {"attempt": n, "step": step}, source))
    return facts


def facts_from_cel_event(node: str, extra: str, at: float) -> list[CallFact]:
    """A placeholder's CEL user event as the same facts (same keys) as its FastAGI report."""
    parts = [*extra.split("|"), "", "", "", ""][:4]
    return report_facts(node, {f"agi_arg_{i + 1}": p for i, p in enumerate(parts)}, at,
                        source="cel")


class KeepPlace:
    """The FastAGI ``keep`` endpoint (answering: Asterisk goes on at once) and a call-fact
    sink making the whisper for each case whose caller chose to keep their place."""

    def __init__(self, *, record: Recorder, case_number: Callable[[str], str | None],
                 sounds_of: Callable[[str], Path | None], speak: Speak | None,
                 default_node: str, clock: Callable[[], float] = time.time):
        self.record = record
        self.case_number = case_number
        self.sounds_of = sounds_of
        self.speak = speak
        self.default_node = default_node
        self.clock = clock
        self.reports = 0
        self._facts: asyncio.Queue[CallFact] = asyncio.Queue(10_000)
        self._task: asyncio.Task[None] | None = None

    def answer(self, headers: dict[str, str]) -> None:
        uniqueid = headers.get("agi_uniqueid", "")
        node = uniqueid.rsplit("-", 1)[0] if "-" in uniqueid else self.default_node
        facts = report_facts(node, headers, self.clock())
        if not facts:
            log.warning("keep-my-place report unreadable")
        for fact in facts:
            try:
                self._facts.put_nowait(fact)
            except asyncio.QueueFull:
                log.error("keep-my-place reports backlog full: report dropped",
                          extra={"call_id": fact.call_id})

    async def on_fact(self, fact: CallFact) -> None:
        """A call-tracker sink: the caller pressed the key; the agent who takes the place will
        hear the case's number (a general whisper if it cannot be made)."""
        if fact.kind != "keep_place" or self.speak is None:
            return
        number = self.case_number(fact.call_id)
        where = self.sounds_of(fact.node)
        if not number or where is None:
            return
        text = "工单号 " + " ".join(number)
        speak = self.speak
        try:
            await asyncio.to_thread(speak, text, where / PROMPTS / f"case-{number}.wav")
        except Exception as exc:
            log.warning("keep-my-place whisper not made; the general one is used",
                        extra={"case": number, "error": str(exc)[:200]})

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="keep-place-reports")

    async def stop(self, timeout: float = 5.0) -> None:
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._facts.join(), timeout)
            await cancel_and_wait([self._task], what="keep-place reports")
            self._task = None

    async def _run(self) -> None:
        while True:
            fact = await self._facts.get()
            try:
                await self.record(fact)
                self.reports += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("keep-my-place report not recorded", extra={
                    "call_id": fact.call_id, "error": str(exc)[:200]})
            finally:
                self._facts.task_done()
