"""One SIP party in its own process, driven by JSON lines on stdin, reporting on stdout.

Started by ``agent_desk.softphone.phones.SipPhones``; not meant to be run by hand.
"""

from __future__ import annotations

import asyncio
import faulthandler
import itertools
import json
import os
import sys
from pathlib import Path
from typing import Any

# pjsip writes its log to stdout, which is our channel to the parent: keep the real stdout for
# messages and send everything else printed on fd 1 to stderr.
_CHANNEL = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
os.dup2(2, 1)

from agent_desk.softphone.engine import SipCall, SipParty, SipStack  # noqa: E402


class Worker:
    def __init__(self, port: int = 0) -> None:
        # A fixed port: the party stands for a trunk's far end that Asterisk reaches by address.
        self.stack = SipStack(port=port)
        self.party: SipParty | None = None
        self.calls: dict[int, SipCall] = {}
        self.ids: dict[int, int] = {}  # id(SipCall) -> our call id
        self._seq = itertools.count(1)
        self.out = _CHANNEL

    def send(self, doc: dict[str, Any]) -> None:
        self.out.write(json.dumps(doc, ensure_ascii=False) + "\n")
        self.out.flush()

    def call_id(self, call: SipCall) -> int:
        cid = self.ids.get(id(call))
        if cid is None:
            cid = next(self._seq)
            self.ids[id(call)] = cid
            self.calls[cid] = call
        return cid

    def observe(self, kind: str, obj: Any, details: dict[str, Any]) -> None:
        if kind == "registered":
            self.send({"ev": "registered"})
            return
        cid = self.call_id(obj)
        doc = {"ev": kind, "call": cid, **details}
        if kind == "incoming":
            doc["record_file"] = str(obj.record_file) if obj.record_file else None
        self.send(doc)

    async def op(self, msg: dict[str, Any]) -> Any:
        op = msg["op"]
        stack = self.stack
        if op == "agent":
            self.party = await stack.agent(
                msg["extension"], msg["password"], server=msg["server"],
                play=_p(msg.get("play")), record_dir=_p(msg.get("record_dir")),
                auto_answer=msg.get("auto_answer", True),
                answer_delay=msg.get("answer_delay", 0.0))
            return {"port": stack.local_port}
        if op == "caller":
            self.party = await stack.caller(
                msg["number"], display_name=msg.get("display_name", ""),
                host=msg.get("host", "127.0.0.1"), play=_p(msg.get("play")),
                record_dir=_p(msg.get("record_dir")),
                auto_answer=msg.get("auto_answer", False),
                answer_delay=msg.get("answer_delay", 0.0))
            return {"port": stack.local_port}
        assert self.party is not None, "create the party first"
        party = self.party
        if op == "call":
            call = await party.call(msg["uri"], headers=msg.get("headers") or {},
                                    play=_p(msg.get("play")), record=_p(msg.get("record")))
            return {"call": self.call_id(call),
                    "record_file": str(call.record_file) if call.record_file else None}
        if op == "unregister":
            await party.unregister()
            return None
        call = self.calls[msg["call"]]
        if op == "answer":
            await party.answer(call, msg.get("code", 200))
        elif op == "hangup":
            await party.hangup(call)
        elif op == "dtmf":
            await party.dtmf(call, msg["digits"])
        elif op == "hold":
            await party.hold(call)
        elif op == "unhold":
            await party.unhold(call)
        elif op == "play":
            await party.play(call, _p(msg.get("path")))
        elif op == "stop_recording":
            await stack.run(call.stop_recording)
            await asyncio.wait_for(call.recorded.wait(), 30)
            if call.recording_complete is False:
                raise RuntimeError(f"recording {call.record_file} is incomplete")
            return {"record_file": str(call.record_file) if call.recording_complete else None}
        else:
            raise ValueError(f"unknown op {op!r}")
        return None


def _p(v: str | None) -> Path | None:
    return Path(v) if v else None


async def main() -> None:
    # A crash inside pjsua2 (SIGSEGV, SIGABRT) leaves its Python stack in the party's log.
    faulthandler.enable()
    port = int(sys.argv[sys.argv.index("--port") + 1]) if "--port" in sys.argv else 0
    worker = Worker(port)
    await worker.stack.start()
    worker.stack.observer = worker.observe
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    worker.send({"ev": "ready", "port": worker.stack.local_port})
    quit_id: Any = None
    while True:
        line = await reader.readline()
        if not line:
            break  # the parent has gone: stop all the same, so the recordings are complete
        msg = json.loads(line)
        if msg.get("op") == "quit":
            quit_id = msg.get("id")
            break
        try:
            result = await worker.op(msg)
            worker.send({"re": msg.get("id"), "ok": True, "result": result})
        except Exception as exc:  # reported to the parent, which raises it there
            worker.send({"re": msg.get("id"), "ok": False,
                         "error": f"{type(exc).__name__}: {exc}"})
    await shut_down(worker, quit_id)


async def shut_down(worker: Worker, quit_id: Any) -> None:
    """Stop the library (every recorder is destroyed before it), then acknowledge: the parent
    reads the recordings only after this answer and the process's exit."""
    try:
        recordings = await worker.stack.stop()
    except Exception as exc:
        worker.send({"re": quit_id, "ok": False, "error": f"{type(exc).__name__}: {exc}"})
        return
    incomplete = [str(path) for path, complete in recordings if not complete]
    if incomplete:
        worker.send({"re": quit_id, "ok": False,
                     "error": f"recordings left incomplete: {', '.join(incomplete)}"})
        return
    worker.send({"re": quit_id, "ok": True,
                 "result": {"recordings": [str(path) for path, _ in recordings]}})


if __name__ == "__main__":
    asyncio.run(main())
