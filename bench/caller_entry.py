"""Answer -> queue entry for callers who press nothing: queue first beside today's dialplan.

Issue 17: with the menu first, a caller who presses nothing (most callers) hears the whole
prompt and the key window before the router is asked, so the call reaches the queue seconds
after it is answered. With ``[menu] first = "queue"`` the caller is in the city's queue at once
and hears the prompt while waiting. In one run, two labs (each its own Asterisk, the service
with its router, the production prompt and key window of hotline.example.toml) take the same
calls: pjsua2 callers dial 12345 and press nothing. The times are Asterisk's own: its CEL
record of each call, ANSWER to the Queue() application's start (microseconds). JSON lines on
stdout, a summary per dialplan and the ratio.

    .venv/bin/python bench/caller_entry.py [--calls 20] [--concurrent 4]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from benchlib import emit, loadavg

from common.logs import setup_logging
from lab.harness import Lab, lab_config
from telephony.asterisk.sounds import tone
from telephony.calls.cel import read_cel


def entry_times(cel_db: Path) -> list[float]:
    """Seconds from each inbound call's ANSWER to its first Queue() start (CEL)."""
    rows = read_cel(cel_db, 0, limit=1_000_000)
    answer: dict[str, float] = {}
    queued: dict[str, float] = {}
    for r in rows:
        if r.uniqueid != r.linkedid or not r.channel.startswith("PJSIP/trunk-"):
            continue
        if r.event == "ANSWER":
            answer.setdefault(r.uniqueid, r.at)
        elif r.event == "APP_START" and r.app == "Queue":
            queued.setdefault(r.uniqueid, r.at)
    return [queued[u] - answer[u] for u in queued if u in answer]


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


async def one_dialplan(first: str, calls: int, concurrent: int, work: Path) -> dict[str, object]:
    # The production prompt and key window (hotline.example.toml); callers wait in the queue
    # (nobody signs in), each hangs up once Asterisk has it in Queue().
    cfg = lab_config(work / first, overrides={"menu.first": first,
                                              "nobody.when_empty": "wait"})
    lab = Lab(cfg)
    try:
        await lab.start_asterisk()
        await lab.start_service()
        sound = tone(work / f"{first}-caller.wav", freq=700, seconds=3)
        slots = asyncio.Semaphore(concurrent)

        async def in_queue(number: str) -> bool:
            out = await asyncio.to_thread(lab.instance.cli, "core show channels concise")
            return any("!Queue!" in line and number in line for line in out.splitlines())

        async def call(i: int) -> None:
            number = f"1380017{i:04d}"
            async with slots:
                party = await lab.caller(number, play=sound)
                try:
                    c = await lab.dial(party, trunk="nanjing")
                    for _ in range(300):
                        if await in_queue(number):
                            break
                        await asyncio.sleep(0.1)
                    await party.hangup(c)
                    await asyncio.wait_for(c.disconnected.wait(), 10)
                finally:
                    await party.close()

        await asyncio.gather(*(call(i) for i in range(calls)))
        await asyncio.sleep(1.0)  # CEL rows of the last hang-ups
        times = entry_times(lab.instance.cel_db)
        doc: dict[str, object] = {
            "dialplan": f"{first} first", "calls": len(times),
            "p50_s": round(percentile(times, 50), 3), "p95_s": round(percentile(times, 95), 3),
            "mean_s": round(statistics.mean(times), 3), "max_s": round(max(times), 3),
            "prompt": cfg.menu.prompt, "key_window_s": cfg.menu.timeout_s}
        emit(**doc)
        return doc
    finally:
        await lab.close()


async def run(calls: int, concurrent: int) -> int:
    setup_logging("warning", "text")
    work = Path(tempfile.mkdtemp(prefix="bench-caller-entry-"))
    try:
        queue = await one_dialplan("queue", calls, concurrent, work)
        menu = await one_dialplan("menu", calls, concurrent, work)
        emit(summary=True, calls=calls, concurrent=concurrent,
             queue_first_p50_s=queue["p50_s"], queue_first_p95_s=queue["p95_s"],
             menu_first_p50_s=menu["p50_s"], menu_first_p95_s=menu["p95_s"],
             loadavg=loadavg())
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--concurrent", type=int, default=4)
    args = parser.parse_args()
    return asyncio.run(run(args.calls, args.concurrent))


if __name__ == "__main__":
    sys.exit(main())
