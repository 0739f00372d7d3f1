"""The demo's phone in the browser (docs/webrtc.md): the console served on its port, an agent
whose phone is the browser signed in from headless Chromium (a WAV file as its microphone), a
call to 12345 ringing in the page, answered from the toolbar and hung up; screenshots and the
time from Asterisk ringing the agent to the page ringing. Without Chromium or Playwright it
only says how to open the console."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent_desk.web.auth import Users
from hotline.desk import start_web
from hotline.service import HotlineService
from lab.harness import Lab
from telephony.asterisk.certs import sip_certificate, spki_sha256

CHROMIUM = "/usr/bin/chromium"


async def browser_phone_demo(lab: Lab, service: HotlineService, agent_id: str, *,
                             caller_wav: Path, mic_wav: Path, out: Path,
                             say: Callable[[str], None], keep: bool = False) -> bool:
    cfg = lab.cfg
    runner, _deps = await start_web(service, "127.0.0.1", cfg.web.port)
    user, password = f"agent{agent_id}", secrets.token_urlsafe(12)
    await Users(service.store.sessions).add(user, password, "agent", agent_id=agent_id)
    base = f"http://127.0.0.1:{cfg.web.port}"
    wss = cfg.webrtc_url(lab.node.id, f"127.0.0.1:{cfg.web.port}")
    agent = cfg.agent(agent_id)
    say(f"\n== the phone in the browser (agent {agent_id} {agent.name}) ==")
    say(f"console: {base}/console  user {user}  password {password}")
    say(f"(a browser of your own: open https://127.0.0.1:{lab.node.webrtc_port}/ws once and "
        "accept the self-signed certificate, then the console's phone registers)")
    ok = True
    try:
        try:
            from playwright.async_api import async_playwright
        except ImportError:
            async_playwright = None  # type: ignore[assignment]
        if async_playwright is None or shutil.which(CHROMIUM) is None:
            say("no Chromium/Playwright here: open the console above to see the phone ring")
        else:
            ok = await _run(async_playwright, lab, service, agent_id, base, user, password,
                            caller_wav, mic_wav, out, say, wss)
        if keep:
            say("\nthe hotline keeps running for you (Ctrl-C ends the demo); call it with any "
                f"SIP phone at sip:12345@127.0.0.1:{lab.node.sip_port}")
            await asyncio.Event().wait()
    finally:
        await runner.cleanup()
    return ok


async def _run(async_playwright: Any, lab: Lab, service: HotlineService, agent_id: str,
               base: str, user: str, password: str, caller_wav: Path, mic_wav: Path,
               out: Path, say: Callable[[str], None], wss: str) -> bool:
    spki = spki_sha256(sip_certificate(lab.cfg).cert)
    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run",
            "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-audio-capture={mic_wav}",
            "--autoplay-policy=no-user-gesture-required",
            f"--ignore-certificate-errors-spki-list={spki}"]
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            ctx = await browser.new_context(viewport={"width": 1500, "height": 1000},
                                            locale="zh-CN")
            page = await ctx.new_page()
            page.set_default_timeout(30_000)
            await page.goto(base + "/login")
            await page.fill("#username", user)
            await page.fill("#password", password)
            await page.click("#submit")
            await page.wait_for_url("**/console")
            await page.wait_for_function(
                "() => document.querySelector('#phone').dataset.state === 'registered'")
            say(f"  Chromium signed in as {user}: the page's phone registered over {wss}")
            await page.click("#ready")
            caller = await lab.caller("13700001234", display_name="周敏", play=caller_wav)
            call = await lab.dial(caller, trunk="nanjing")
            await page.wait_for_function("() => window.hotlinePhone.invites > 0")
            rang = await page.evaluate("() => window.hotlinePhone.lastInviteAt") / 1000
            asked = await _agent_called_at(service, agent_id)
            await page.screenshot(path=str(out / "console-phone-ringing.png"))
            say(f"  a call to 12345 rings in the page: "
                f"{(rang - asked) * 1000:.0f} ms from Asterisk ringing the agent "
                f"(AgentCalled) to the page's INVITE; screen pop "
                f"{await page.text_content('#p-caller')}")
            await page.click("#answer")
            await page.wait_for_function(
                "() => document.querySelector('#phone').dataset.state === 'in_call'")
            await asyncio.wait_for(call.answered.wait(), 20)
            await page.wait_for_function(
                "() => document.querySelector('#timer').textContent >= '00:03'")
            await page.screenshot(path=str(out / "console-phone-in-call.png"))
            say("  answered from the toolbar; talking (WebRTC audio both ways)")
            await page.click("#hangup")
            await asyncio.wait_for(call.disconnected.wait(), 20)
            say(f"  hung up from the toolbar; screenshots in {out}")
            await caller.close()
            return True
        finally:
            await browser.close()


async def _agent_called_at(service: HotlineService, agent_id: str, timeout: float = 10.0
                           ) -> float:
    """When Asterisk rang the agent for the latest call (AgentCalled's time, live state)."""
    redis = service.redis
    assert redis is not None
    deadline = time.monotonic() + timeout
    while True:
        times = []
        async for key in redis.scan_iter(f"{service.cfg.redis.prefix}:call:*"):
            call = await redis.hgetall(key)
            if call.get("agent") == agent_id and call.get("ringing_at"):
                times.append(float(call["ringing_at"]))
        if times or time.monotonic() > deadline:
            return max(times) if times else time.time()
        await asyncio.sleep(0.05)
