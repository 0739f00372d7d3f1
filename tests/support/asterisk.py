"""What the session's Asterisk still holds after a test: channels, bridges, conferences."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from lab.harness import Lab
from telephony.ami import AmiActionFailed, AmiClient


async def wait_no_channels(lab: Lab, timeout: float = 10.0) -> int:
    """Wait until Asterisk has no channel; returns how many are left (0 if none)."""
    deadline = time.monotonic() + timeout
    count = -1
    while time.monotonic() < deadline:
        out = await asyncio.to_thread(lab.instance.cli, "core show channels count")
        count = int(out.split(" active channel")[0].strip().split()[-1])
        if count == 0:
            return 0
        await asyncio.sleep(0.25)
    return count


async def leftovers(lab: Lab) -> dict[str, Any]:
    """What Asterisk still holds, asked over AMI: channels, bridges, conferences."""
    node = lab.node
    ami = AmiClient(node=node.id, host=node.ami_host, port=node.ami_port,
                    username=node.ami_username, secret=lab.cfg.ami_secret)
    await ami.start()
    try:
        await ami.wait_connected(10)
        out: dict[str, Any] = {}
        channels = await ami.send_list({"Action": "CoreShowChannels"})
        if channels:
            out["channels"] = sorted(str(m.get("Channel")) for m in channels)
        bridges = await ami.send_list({"Action": "BridgeList"})
        if bridges:
            out["bridges"] = sorted(f"{m.get('BridgeTechnology')}:{m.get('BridgeNumChannels')}"
                                    for m in bridges)
        try:
            rooms = await ami.send_list({"Action": "ConfbridgeListRooms"})
        except AmiActionFailed:  # "No active conferences."
            rooms = []
        if rooms:
            out["conferences"] = sorted(str(m.get("Conference")) for m in rooms)
        return out
    finally:
        await ami.stop()


async def wait_clean(lab: Lab, timeout: float = 15.0) -> dict[str, Any]:
    """Wait until no channel, bridge or conference is left; returns what is left ({} if
    clean)."""
    deadline = time.monotonic() + timeout
    left = await leftovers(lab)
    while left and time.monotonic() < deadline:
        await asyncio.sleep(0.3)
        left = await leftovers(lab)
    return left
