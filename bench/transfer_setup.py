"""How fast an emergency transfer reaches the line, compared with a bare Originate.

Runs a whole lab (its own Asterisk on free ports, the service, pjsua2 parties). For each round
a caller talks with agent 1001, the agent presses "emergency 110", and we time the action until
110's phone rings and until the three-way call stands. In the same run, a bare AMI Originate to
the same trunk gives the floor: the ratio says what call control adds. JSON lines on stdout.

    .venv/bin/python bench/transfer_setup.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchlib import emit

from common.logs import setup_logging
from lab.harness import Lab, lab_config
from telephony.asterisk.sounds import tone


async def run(rounds: int) -> int:
    setup_logging("warning", "text")
    work = Path(tempfile.mkdtemp(prefix="bench-transfer-"))
    cfg = lab_config(work, overrides={"menu.prompt": "您好", "menu.timeout_s": 1.0,
                                      "transfers.qualify_s": 1})
    lab = Lab(cfg)
    try:
        await lab.start_asterisk()
        service = await lab.start_service()
        ami = service.nodes[cfg.nodes[0].id].ami
        t_agent = tone(work / "a.wav", freq=1300, seconds=3)
        t_caller = tone(work / "c.wav", freq=700, seconds=3)
        t_line = tone(work / "e.wav", freq=2500, seconds=3)
        police = await lab.line("police", play=t_line, answer_delay=0.5)
        agent = await lab.agent("1001", play=t_agent)
        for _ in range(100):  # until Asterisk's qualify sees 110's trunk
            if "Avail" in await asyncio.to_thread(lab.instance.cli, "pjsip show aor dest-police"):
                break
            await asyncio.sleep(0.2)
        bare, ring, joined = [], [], []
        for i in range(rounds):
            # Floor: Asterisk alone dialling the same trunk.
            t0 = time.monotonic()
            await ami.originate(channel="PJSIP/110@dest-police", application="Wait",
                                data="1", timeout_s=10, caller_id="<12345>")
            call = await asyncio.wait_for(police.incoming.get(), 10)
            bare.append(time.monotonic() - t0)
            await asyncio.wait_for(call.disconnected.wait(), 10)

            caller = await lab.caller(f"1390000{i:04d}", play=t_caller)
            c_call = await lab.dial(caller)
            a_call = await asyncio.wait_for(agent.incoming.get(), 30)
            await asyncio.wait_for(a_call.answered.wait(), 10)
            rt = service.nodes[cfg.nodes[0].id]
            call_id = None
            for _ in range(200):
                call_id = next((c.call_id for c in rt.tracker.calls.values()
                                if c.answered_by == "1001" and not c.ended), None)
                if call_id:
                    break
                await asyncio.sleep(0.05)
            if call_id is None:
                raise RuntimeError("the service never saw agent 1001 answer")
            t0 = time.monotonic()
            leg = await service.callcontrol.emergency(call_id, "1001", "police")
            p_call = await asyncio.wait_for(police.incoming.get(), 10)
            ring.append(time.monotonic() - t0)
            await asyncio.wait_for(leg.settled.wait(), 20)
            joined.append(time.monotonic() - t0)
            emit(round=i, bare_originate_s=round(bare[-1], 4), emergency_ring_s=round(ring[-1], 4),
                 emergency_three_way_s=round(joined[-1], 4), outcome=leg.outcome)
            await caller.hangup(c_call)
            await asyncio.wait_for(p_call.disconnected.wait(), 10)
            await asyncio.wait_for(a_call.disconnected.wait(), 10)
            await caller.close()
        med = statistics.median
        emit(summary=True, rounds=rounds, bare_originate_median_s=round(med(bare), 4),
             emergency_ring_median_s=round(med(ring), 4),
             emergency_three_way_median_s=round(med(joined), 4),
             ring_vs_bare_ratio=round(med(ring) / med(bare), 2),
             answer_delay_s=0.5, emergency_timeout_s=cfg.transfers.emergency_timeout_s)
        return 0
    finally:
        await lab.close()
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    return asyncio.run(run(parser.parse_args().rounds))


if __name__ == "__main__":
    sys.exit(main())
