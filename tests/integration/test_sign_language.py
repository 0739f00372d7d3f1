"""The sign-language seat (手语座席, issue 18): from the public page (no sign-in) a caller's
Chromium starts a video call; it reaches the seat's console through the province's
sign_language queue; both pages decode the other's video frames (WebRTC statistics) and
exchange text (SIP MESSAGE in the call); the call leaves a case like any other, with the video
the seat's console recorded (sealed at rest, played by Chromium); tickets are limited per
address and a call without one is refused."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from sqlalchemy import select

from asr.models import Recording
from cases.models import Case
from common import sealed
from telephony.asterisk.sounds import tone
from tests.support.browser import MS
from tests.support.browser import login as sign_in
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


@pytest.fixture
async def desk_unrecorded(tmp_path: Path, pg_admin: str):
    # Session timers at their shortest (RFC 4028's 90 s: Asterisk refreshes after 45 s).
    async with webrtc_desk(tmp_path, pg_admin, **{
            **sign_language_overrides(record_video=False),
            "transfers.agent_session_expires_s": 90}) as d:
        yield d


async def _video_call(browser, base: str):
    """The seat signed in and ready, a guest's video call from /sign answered there."""
    seat = await login(browser, base, "agent1001")
    await phone_state(seat, "registered")
    await seat.click("#ready")
    await seat.wait_for_selector('#state[data-state="ready"]')

    ctx = await browser.new_context(viewport={"width": 1200, "height": 900}, locale="zh-CN")
    guest = await ctx.new_page()
    guest.set_default_timeout(MS)
    guest.on("console", lambda m: print(f"guest: {m.type}: {m.text}"))
    await guest.goto(base + "/sign")  # no sign-in
    await guest.wait_for_function(
        "() => document.querySelector('h1').textContent === '手语视频服务'")
    await guest.click("#start")
    await phone_state(seat, "ringing")
    await seat.wait_for_function(  # the province's queue, shared by every city
        "() => document.querySelector('#r-queue').textContent === '江苏全省 · 手语视频'")
    await seat.click("#answer")
    await phone_state(seat, "in_call")
    await guest.wait_for_function("() => window.signCall.state() === 'in_call'")
    return seat, guest


@contextlib.asynccontextmanager
async def _in_call(desk, tmp_path: Path):
    """Chromium with a fake camera and a tone for microphone, the guest's video call answered
    by the seat: (browser, seat's page, guest's page)."""
    from playwright.async_api import async_playwright

    mic = tone(tmp_path / "mic.wav", freq=1300, seconds=3)
    async with async_playwright() as pw:
        browser = await desk.chromium(pw, mic)
        try:
            yield browser, *(await _video_call(browser, desk.console.base_url))
        finally:
            await browser.close()


async def test_video_call_from_the_public_page_reaches_the_seat(desk, artifacts, tmp_path):
    svc, console = desk.service, desk.console
    async with _in_call(desk, tmp_path) as (browser, seat, guest):

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

        # The seat's console records the call and uploads it piece by piece.
        await seat.wait_for_function("() => window.hotlineRecorder.state === 'recording' "
                                     "&& window.hotlineRecorder.sent >= 2")
        await seat.wait_for_selector('#recording[data-state="recording"]')
        assert "录像中" in (await seat.text_content("#recording"))
        await seat.screenshot(path=str(artifacts / "sign-language-seat-recording.png"))
        await _pieces_are_checked(console, case_number)

        await guest.click("#end")
        await guest.wait_for_function("() => window.signCall.state() === 'ended'")
        await phone_state(seat, "registered")
        await seat.wait_for_function("() => window.hotlineRecorder.state === 'done'")
        pieces = await seat.evaluate("() => window.hotlineRecorder.sent")

        # Stored sealed, listed on the case as a video, played by Chromium itself.
        sup = await console.user("sup")
        status, tr = await sup.get(f"/api/cases/{case_number}/transcript")
        assert status == 200, tr
        videos = [r for r in tr["recordings"] if r["kind"] == "video"]
        assert len(videos) == 1 and videos[0]["open"] is False, tr["recordings"]
        url = videos[0]["url"]
        rec = await _video_row(svc, case_number)
        stored = await asyncio.to_thread(Path(rec.path).read_bytes)
        assert stored.startswith(sealed.MAGIC) and EBML not in stored
        assert sealed.pieces(Path(rec.path)) == (pieces, True)
        resp = await sup.client.get(url)
        webm = await resp.read()
        assert resp.status == 200 and resp.content_type == "video/webm"
        assert webm.startswith(EBML) and len(webm) == rec.bytes and rec.seconds
        player = await sign_in(browser, console.base_url, "sup")
        await player.wait_for_url("**/wallboard")
        # The case page has a player for it; this page plays it.
        await player.goto(f"{console.base_url}/cases#{case_number}")
        await player.wait_for_selector(f'#detail video[src="{url}"]', state="attached")
        await player.screenshot(path=str(artifacts / "sign-language-case-video.png"))
        played = await player.evaluate(PLAY, url)
        assert played["width"] == 640 and played["height"] == 360, played
        await player.wait_for_function(
            "() => document.querySelector('#played').getVideoPlaybackQuality()"
            ".totalVideoFrames > 5")
        # The audit log names who played it.
        admin = await console.user("admin")
        _, audit = await admin.get(
            f"/api/audit?case={case_number}&action=recording.download")
        assert audit["entries"] and audit["entries"][0]["user"] == "sup", audit
        # Agents do not play recordings, their own call's neither.
        agent = await console.user("agent1001")
        status, doc = await agent.get(url)
        assert status == 403, doc
    await svc.drain()

    async def ended() -> Case | None:
        async with svc.store.sessions() as s:
            case = (await s.execute(select(Case).where(Case.number == case_number))
                    ).scalar_one_or_none()
        return case if case is not None and case.ended_at is not None else None
    case = await eventually(ended, 20, what="the video call's case")
    assert case.agent_id == "1001" and case.outcome == "answered"
    assert case.queue == "province-sign_language" and case.dialed_number == "1234599"
    # The caller ended it: Asterisk did not cut the video call (no rtp_timeout on the seat,
    # asterisk/asterisk#1940), though it lasted longer than the tests' 4 s media timeout.
    assert case.hangup_by == "caller" and case.talk_seconds > 4, (case.hangup_by,
                                                                   case.talk_seconds)

    # Asterisk's audio recordings of the call are its first part still (the video is apart).
    async def audio() -> list[str]:
        doc = await svc.transcripts.for_case(case_number)
        return [r["url_name"] for r in doc["recordings"] if r["kind"] == "audio"]
    names = await eventually(audio, 30, what="the call's audio recordings")
    assert all(f"/{case_number}-1-" in n for n in names), names


EBML = bytes.fromhex("1a45dfa3")  # a WebM's first four bytes
# The recording in a <video> of the page: loaded, playing; its picture's size.
PLAY = """async (url) => {
  const v = document.createElement('video');
  v.id = 'played'; v.muted = true; v.src = url; document.body.append(v);
  await new Promise((ok, bad) => { v.onloadeddata = ok;
    v.onerror = () => bad(new Error('video: ' + (v.error && v.error.message))); });
  await v.play();
  await new Promise(ok => v.requestVideoFrameCallback(() => ok()));
  return { width: v.videoWidth, height: v.videoHeight };
}"""


async def _video_row(svc, number: str) -> Recording:
    async with svc.store.sessions() as s:
        return (await s.execute(select(Recording).join(Case, Case.id == Recording.case_id)
                                .where(Case.number == number, Recording.side == "video"))
                ).scalar_one()


async def _pieces_are_checked(console, number: str) -> None:
    """While the console records: a piece sent again is stored once; a gap, garbage,
    another agent, another role and an unknown case are refused, and nothing is lost."""
    agent = await console.user("agent1001")
    webm = {"Content-Type": "video/webm"}
    piece = f"/api/sign-language/video/{number}"
    rec = await _video_row(console.service, number)
    before = sealed.pieces(Path(rec.path))[0]
    status, doc = await agent.put(f"{piece}/0", raw=EBML + b"again", headers=webm)
    assert (status, doc["stored"]) == (200, False), doc
    assert sealed.pieces(Path(rec.path))[0] >= before
    status, doc = await agent.put(f"{piece}/9999", raw=b"later", headers=webm)
    assert (status, doc["error"]) == (409, "sequence") and "missing" in doc["message"], doc
    status, doc = await agent.put(f"{piece}/0", raw=b"garbage", headers=webm)
    assert (status, doc["error"]) == (422, "invalid") and "WebM" in doc["message"], doc
    status, doc = await agent.put(f"{piece}/0", raw=b"{}")  # JSON, not a WebM
    assert (status, doc["error"]) == (422, "invalid"), doc
    status, doc = await agent.put(f"{piece}/x", raw=b"x", headers=webm)
    assert (status, doc["error"]) == (422, "invalid"), doc
    status, doc = await agent.put(f"{piece}/0", raw=b"", headers=webm)
    assert (status, doc["error"]) == (422, "invalid"), doc
    status, doc = await agent.put(f"{piece}/0", raw=b"x" * (8 << 20 | 1), headers=webm)
    assert (status, doc["error"]) == (413, "too_large"), doc
    status, doc = await agent.put("/api/sign-language/video/C000/0", raw=b"x", headers=webm)
    assert (status, doc["error"]) == (404, "not_found"), doc
    other = await console.user("agent1002")
    status, doc = await other.put(f"{piece}/0", raw=b"x", headers=webm)
    assert (status, doc["error"]) == (403, "forbidden"), doc
    sup = await console.user("sup")
    status, doc = await sup.put(f"{piece}/0", raw=b"x", headers=webm)
    assert (status, doc["error"]) == (403, "forbidden"), doc
    status, doc = await other.post(piece, {"pieces": 1})
    assert (status, doc["error"]) == (403, "forbidden"), doc
    assert sealed.pieces(Path(rec.path)) == (max(before, sealed.pieces(Path(rec.path))[0]),
                                             False)


# Every SIP request a page's phone receives and every answer it sends (first line and CSeq).
SIP_LOG = """(who) => {
  const ua = who === 'seat' ? window.hotlinePhone.ua : window.signCall.ua();
  const t = ua.transport; window.sipLog = [];
  const received = t.onMessage;
  t.onMessage = m => { window.sipLog.push('in ' + m.split('\\r\\n')[0]); received(m); };
  const send = t.send.bind(t);
  t.send = m => { window.sipLog.push('out ' + m.split('\\r\\n')[0] + ' '
                                     + ((m.match(/CSeq: .*/) || [''])[0])); return send(m); };
}"""
REFRESH_ANSWERED = ("() => window.sipLog.some(l => l.startsWith('in INVITE')) && "
                    "window.sipLog.some(l => /^out SIP.2.0 200 .*INVITE/.test(l))")


async def test_with_record_video_off_nothing_is_recorded(desk_unrecorded, tmp_path):
    """Nothing recorded; and the video call, which has no media timeout (asterisk#1940),
    outlives Asterisk's session refresh: both pages answer its re-INVITE, video goes on."""
    svc, console = desk_unrecorded.service, desk_unrecorded.console
    async with _in_call(desk_unrecorded, tmp_path) as (_browser, seat, guest):
        await seat.evaluate(SIP_LOG, "seat")
        await guest.evaluate(SIP_LOG, "guest")
        case_number = await seat.text_content("#p-case")
        await seat.wait_for_function("() => window.hotlinePhone.creds.record_video "
                                     "=== false")
        agent = await console.user("agent1001")
        status, doc = await agent.put(f"/api/sign-language/video/{case_number}/0",
                                      raw=EBML, headers={"Content-Type": "video/webm"})
        assert (status, doc["error"]) == (404, "not_available"), doc
        for page in (seat, guest):
            await page.wait_for_function(REFRESH_ANSWERED, timeout=90_000)
        assert await guest.evaluate("() => window.signCall.state()") == "in_call"
        before = (await seat.evaluate(VIDEO.format(who="hotlinePhone")))[0]

        async def still_decoding() -> bool:
            return (await seat.evaluate(VIDEO.format(who="hotlinePhone")))[0] > before + 10
        await eventually(still_decoding, 30, what="video after the session refresh")
        await guest.click("#end")
        await phone_state(seat, "registered")
        assert await seat.evaluate("() => window.hotlineRecorder.state") == "off"
        assert await seat.get_attribute("#recording", "hidden") is not None
    doc = await svc.transcripts.for_case(case_number)
    assert [r for r in doc["recordings"] if r["kind"] == "video"] == []


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
