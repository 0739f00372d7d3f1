"""The console's phone in real Chromium (issue 18): a lab whose agent 1001 answers in the
browser (its own Asterisk: the session's has SIP phones only), the service and console on it,
and Chromium with a WAV file as its microphone, trusting the node's certificate by its key."""

from __future__ import annotations

import asyncio
import contextlib
import tomllib
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp.test_utils import TestServer

from agent_desk.web.auth import Users
from hotline.desk import console_app
from hotline.service import HotlineService
from lab.harness import EXAMPLE_CONFIG, Lab
from telephony.asterisk.certs import sip_certificate, spki_sha256
from tests.support.browser import CHROMIUM, new_page
from tests.support.browser import login as sign_in
from tests.support.console import CONSOLE_PASSWORD, CONSOLE_USERS, ConsoleHarness
from tests.support.netfault import FaultProxy
from tests.support.service import ServiceFactory, lab_test_config

BROWSER_AGENT = "1001"


def browser_agents(phone: str = "browser") -> list[dict[str, Any]]:
    """The example's agents, 1001's phone in the browser."""
    agents: list[dict[str, Any]] = tomllib.loads(EXAMPLE_CONFIG.read_text(encoding="utf-8"))[
        "agents"]
    for a in agents:
        if a["id"] == BROWSER_AGENT:
            a["phone"] = phone
    return agents


class WebrtcDesk:
    """A lab with a browser agent, the service with its console, and a fault proxy in front
    of the node's secure WebSocket (the browser's only way to Asterisk's signalling)."""

    def __init__(self, lab: Lab, factory: ServiceFactory, proxy: FaultProxy):
        self.lab = lab
        self.factory = factory
        self.proxy = proxy
        self.service: HotlineService | None = None
        self.console: ConsoleHarness | None = None

    async def start(self) -> WebrtcDesk:
        cfg = self.factory.config(await self.factory.database("sqlite"))
        url = f"wss://127.0.0.1:{self.proxy.port}/ws"
        cfg = cfg.model_copy(update={"webrtc": cfg.webrtc.model_copy(update={
            "urls": {self.lab.node.id: url}})})
        service = self.lab.build_service(
            cfg, cel_from_now=True, cel_interval_s=2.0,
            ami_options={"ping_interval": 1.0, "ping_timeout": 1.0, "backoff": (0.1, 0.2, 0.5)})
        await service.start()
        await service.wait_connected(20)
        self.factory.services.append(service)
        self.service = service
        app, cons = console_app(service)
        server = TestServer(app, host="127.0.0.1")
        await asyncio.wait_for(server.start_server(), 20)
        users = Users(service.store.sessions)
        for name, role, agent in CONSOLE_USERS:
            await users.add(name, CONSOLE_PASSWORD, role, agent_id=agent)
        self.console = ConsoleHarness(self.lab, service, cons, server)
        return self

    def spki(self) -> str:
        """The node certificate's public key hash, as Chromium's
        --ignore-certificate-errors-spki-list takes it (a self-signed certificate made at
        install time: the browser trusts that key, and nothing else)."""
        return spki_sha256(sip_certificate(self.lab.cfg).cert)

    def chromium_args(self, microphone: Path, *, fake_ui: bool = True) -> list[str]:
        """Fake camera, ``microphone`` (a WAV) as the microphone, and permission to use them
        granted (``fake_ui``; without it the browser refuses them, as a user would)."""
        return ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--use-fake-device-for-media-stream",
                *(["--use-fake-ui-for-media-stream"] if fake_ui else []),
                f"--use-file-for-fake-audio-capture={microphone}",
                "--autoplay-policy=no-user-gesture-required",
                f"--ignore-certificate-errors-spki-list={self.spki()}"]

    async def chromium(self, pw: Any, microphone: Path, *, fake_ui: bool = True) -> Any:
        """Debian's Chromium, headless, as chromium_args says."""
        return await pw.chromium.launch(executable_path=CHROMIUM,
                                        args=self.chromium_args(microphone, fake_ui=fake_ui))

    async def close(self) -> None:
        if self.console is not None:
            await self.console.close()


def sign_language_overrides(*, record_video: bool = True) -> dict[str, Any]:
    """The example with the sign-language seat: its skill and number, 1001 its seat, its
    video calls recorded (unless ``record_video`` is off)."""
    raw = tomllib.loads(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    agents = browser_agents()
    for a in agents:
        if a["id"] == BROWSER_AGENT:
            a["skills"] = {**a["skills"], "sign_language": 5}
    return {"skills": {**raw["skills"], "sign_language": "手语视频"},
            "numbers": [*raw["numbers"], {"number": "1234599", "skill": "sign_language",
                                          "name": "手语视频服务"}],
            "agents": agents,
            "sign_language": {"enabled": True, "number": "1234599", "calls_per_address": 3,
                              "record_video": record_video}}


@contextlib.asynccontextmanager
async def webrtc_desk(workdir: Path, pg_admin: str | None, **overrides: Any
                      ) -> AsyncIterator[WebrtcDesk]:
    overrides.setdefault("agents", browser_agents())
    lab = Lab(lab_test_config(workdir / "lab", **overrides))
    await lab.start_asterisk()
    proxy = await FaultProxy("127.0.0.1", lab.node.webrtc_port).start()
    factory = ServiceFactory(lab, workdir, pg_admin)
    desk = WebrtcDesk(lab, factory, proxy)
    try:
        yield await desk.start()
    finally:
        with contextlib.suppress(Exception):
            await desk.close()
        await factory.close()
        await proxy.stop()
        await lab.close()


async def login(browser: Any, base: str, user: str) -> Any:
    """A new browser context signed in to the console as ``user`` (its console messages go
    to the test's output)."""
    page = await new_page(browser)
    page.on("console", lambda m: print(f"page {user}: {m.type}: {m.text} {m.location}"))
    await sign_in(browser, base, user, page=page)
    await page.wait_for_url("**/console")
    return page


async def phone_state(page: Any, state: str) -> None:
    """Wait until the console's phone shows ``state``; fail saying what it shows."""
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    try:
        await page.wait_for_function(f"() => document.querySelector('#phone').dataset.state "
                                     f"=== '{state}'")
    except PlaywrightTimeout:
        now = await page.evaluate("() => [window.hotlinePhone.state, "
                                  "document.querySelector('#msg').textContent]")
        raise AssertionError(f"the phone is not {state}: {now}") from None


# What the page hears: the remote stream's samples for a while, through Web Audio (the
# agent's side of the call as a recording).
RECORD_REMOTE = """async (seconds) => {
  const pc = window.hotlinePhone.session.sessionDescriptionHandler.peerConnection;
  const tracks = pc.getReceivers().map(r => r.track);
  const stream = new MediaStream(tracks.filter(t => t && t.kind === 'audio'));
  const ctx = new AudioContext();
  await ctx.resume();
  const src = ctx.createMediaStreamSource(stream);
  const node = ctx.createScriptProcessor(4096, 1, 1);
  const chunks = [];
  node.onaudioprocess = ev => chunks.push(Array.from(ev.inputBuffer.getChannelData(0)));
  src.connect(node); node.connect(ctx.destination);
  await new Promise(r => setTimeout(r, seconds * 1000));
  src.disconnect(); node.disconnect();
  const rate = ctx.sampleRate; await ctx.close();
  return { rate, samples: chunks.flat() };
}"""

# With the page's own credentials, REGISTER as each other extension (authenticating as the
# page's agent, then as the other): the status codes Asterisk answers.
REGISTER_AS_OTHERS = """async (others) => {
  const { UserAgent, Registerer } = await import('/static/vendor/sip.js/lib/index.js');
  const c = await fetch('/api/phone/credentials').then(r => r.json());
  const out = [];
  for (const user of others) {
    for (const auth of [c.username, user]) {
      const ua = new UserAgent({
        uri: UserAgent.makeURI(c.uri.replace(c.username, user)),
        authorizationUsername: auth, authorizationPassword: c.password,
        transportOptions: { server: c.ws_url }, logLevel: 'error',
        logBuiltinEnabled: false, reconnectionAttempts: 0 });
      await ua.start();
      const reg = new Registerer(ua);
      const code = await new Promise(resolve => {
        reg.register({ requestDelegate: { onAccept: () => resolve(200),
          onReject: r => resolve(r.message.statusCode) } }).catch(() => resolve(-1));
      });
      out.push(code);
      await ua.stop();
    }
  }
  return out;
}"""


def write_wav(path: Path, rate: int, samples: list[float]) -> Path:
    data = (np.clip(np.asarray(samples, dtype=np.float64), -1, 1) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(rate))
        w.writeframes(data.tobytes())
    return path
