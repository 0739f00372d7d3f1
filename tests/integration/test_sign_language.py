"""The sign-language seat (手语座席, issue 18): from the public page (no sign-in) a caller's
Chromium starts a video call; it reaches the seat's console through the province's
sign_language queue; both pages decode the other's video frames (WebRTC statistics) and
exchange text (SIP MESSAGE in the call); the call leaves a case like any other; tickets are
limited per address and a call without one is refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select

from cases.models import Case
from telephony.asterisk.sounds import tone
from tests.support.browser import MS
from tests.support.waiting import eventually
from tests.support.webrtc import login, phone_state, sign_language_overrides, webrtc_desk

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

VIDEO = ("() => (window.{who}.stats()).then(s => s && "
         "[s['inbound-rtp:video']?.framesDecoded || 0, "
         "s['outbound-rtp:video']?.framesEncoded || 0])")


@pytest.fixture
async def desk(tmp_path: Path, pg_admin: str):
    async with webrtc_desk(tmp_path, pg_admin, **sign_language_overrides()) as d:
        yield d


async def test_video_call_from_the_public_page_reaches_the_seat(desk, artifacts, tmp_path):
    from playwright.async_api import async_playwright

    svc, console = desk.service, desk.console
    mic = tone(tmp_path / "mic.wav", freq=1300, seconds=3)
    async with async_playwright() as pw:
        browser = await desk.chromium(pw, mic)
        try:
            seat = await login(browser, console.base_url, "agent1001")
            await phone_state(seat, "registered")
            await seat.click("#ready")
            await seat.wait_for_selector('#state[data-state="ready"]')

            ctx = await browser.new_context(viewport={"width": 1200, "height": 900},
                                            locale="zh-CN")
            guest = await ctx.new_page()
            guest.set_default_timeout(MS)
            guest.on("console", lambda m: print(f"guest: {m.type}: {m.text}"))
            await guest.goto(console.base_url + "/sign")  # no sign-in
            await guest.wait_for_function(
                "() => document.querySelector('h1').textContent === '手语视频服务'")
            await guest.click("#start")
            await phone_state(seat, "ringing")
            await seat.wait_for_function(  # the province's queue, shared by every city
                "() => document.querySelector('#r-queue').textContent === '江苏全省 · 手语视频'")
            await seat.click("#answer")
            await phone_state(seat, "in_call")
            await guest.wait_for_function("() => window.signCall.state() === 'in_call'")

            async def frames(page, who: str) -> bool:
                st = await page.evaluate(VIDEO.format(who=who))
                return bool(st) and st[0] > 10 and st[1] > 10
            await eventually(lambda: frames(seat, "hotlinePhone"), 30,
                             what="video frames decoded in the seat's console")
            await eventually(lambda: frames(guest, "signCall"), 30,
                             what="video frames decoded in the caller's page")

            # Text for what signing cannot carry, both ways.
            await guest.fill("#chat-text", "我的身份证号码尾号是1234")
            await guest.click("#chat-send")
            await seat.wait_for_function("() => document.querySelector('#seat-chat')"
                                         ".textContent.includes('尾号是1234')")
            await seat.fill("#seat-chat-text", "好的，请稍等")
            await seat.click("#seat-chat-form button")
            await guest.wait_for_function("() => document.querySelector('#chat')"
                                          ".textContent.includes('好的，请稍等')")
            await seat.screenshot(path=str(artifacts / "sign-language-seat.png"))
            await guest.screenshot(path=str(artifacts / "sign-language-caller.png"))
            case_number = await seat.text_content("#p-case")
            await guest.click("#end")
            await guest.wait_for_function("() => window.signCall.state() === 'ended'")
            await phone_state(seat, "registered")
        finally:
            await browser.close()
    await svc.drain()

    async def ended() -> Case | None:
        async with svc.store.sessions() as s:
            case = (await s.execute(select(Case).where(Case.number == case_number))
                    ).scalar_one_or_none()
        return case if case is not None and case.ended_at is not None else None
    case = await eventually(ended, 20, what="the video call's case")
    assert case.agent_id == "1001" and case.outcome == "answered"
    assert case.queue == "province-sign_language" and case.dialed_number == "1234599"


async def test_tickets_are_limited_and_needed(desk, tmp_path):
    """Three tickets per address here; a call with a made-up ticket is refused by Asterisk,
    and a real one serves one call only."""
    from playwright.async_api import async_playwright

    anon = await desk.console.anonymous()
    answers = [await anon.post("/api/sign-language/call") for _ in range(4)]
    assert [a[0] for a in answers] == [200, 200, 200, 429], answers
    out = await asyncio.to_thread(desk.lab.instance.cli, "dialplan show globals")
    assert out.count("HOTLINE_SIGN_") == 3, out
    creds = answers[0][1]
    mic = tone(tmp_path / "mic.wav", freq=1300, seconds=3)
    async with async_playwright() as pw:
        browser = await desk.chromium(pw, mic)
        try:
            page = await browser.new_page()
            await page.goto(desk.console.base_url + "/sign")
            forged = await page.evaluate(CALL_WITH_TICKET, {**creds, "ticket": "00" * 16})
            assert forged in (403, 603), forged
        finally:
            await browser.close()


# A call from the sign-language page's guest with the given ticket: the final status code.
CALL_WITH_TICKET = """async (c) => {
  const { UserAgent, Inviter } = await import('/static/vendor/sip.js/lib/index.js');
  const ua = new UserAgent({ uri: UserAgent.makeURI(c.uri), authorizationUsername: c.username,
    authorizationPassword: c.password, transportOptions: { server: c.ws_url },
    logLevel: 'error', logBuiltinEnabled: false, reconnectionAttempts: 0 });
  await ua.start();
  const inv = new Inviter(ua, UserAgent.makeURI(c.target), {
    extraHeaders: ['X-Hotline-Ticket: ' + c.ticket],
    sessionDescriptionHandlerOptions: { constraints: { audio: true, video: false } } });
  const code = await new Promise(resolve => {
    inv.invite({ requestDelegate: { onAccept: () => resolve(200),
      onReject: r => resolve(r.message.statusCode) } }).catch(() => resolve(-1));
  });
  if (code === 200) await inv.bye();
  await ua.stop();
  return code;
}"""
