// The console's phone (docs/webrtc.md): SIP over secure WebSocket to the agent's Asterisk node
// with SIP.js (vendored, no build step), audio over WebRTC (DTLS-SRTP, ICE). It registers with
// the agent's own credentials, asked of the service after sign-in and kept in memory only; it
// re-registers by itself after a network drop (backoff, and at once when the browser says it
// is online again) and after a page reload (the page registers again; Asterisk replaces the
// old contact). The call is the same Asterisk channel as a SIP phone's: queues, transfers,
// recording and captions do not know the difference.
import { Registerer, RegistererState, RequestPendingError, SessionState, UserAgent } from "./vendor/sip.js/lib/index.js";

// Visible states: off (not started or not a browser phone), connecting, registered,
// reconnecting, failed (credentials refused: reloading will not help), ringing, in_call.
export class BrowserPhone {
  constructor({ api, onChange, audio, videos }) {
    this.api = api; this.onChange = onChange || (() => {}); this.audio = audio; this.videos = videos || null;
    this.video = false; this.chat = [];
    this.state = "off"; this.error = null; this.session = null; this.held = false; this.muted = false;
    this.creds = null; this.ua = null; this.registerer = null; this.retry = 0; this.timer = null;
    this.ringer = null; this.ringingAt = null; this.stopped = false;
    // For measurements and tests: when the last INVITE reached the page (epoch ms).
    this.lastInviteAt = null; this.invites = 0;
  }

  set(state, error) {
    this.state = state; if (error !== undefined) this.error = error;
    this.onChange(this);
  }

  async start() {
    try { this.creds = await this.api("GET", "/api/phone/credentials"); }
    catch (e) {
      if (e.code === "no_browser_phone") { this.set("off", null); return false; }
      this.set("failed", { key: "phone.error.credentials", text: e.message }); return false;
    }
    const c = this.creds;
    this.ua = new UserAgent({
      uri: UserAgent.makeURI(c.uri), displayName: c.display_name,
      authorizationUsername: c.username, authorizationPassword: c.password,
      transportOptions: { server: c.ws_url, connectionTimeout: 5, keepAliveInterval: 15 },
      sessionDescriptionHandlerFactoryOptions: {
        peerConnectionConfiguration: { iceServers: (c.ice_servers || []).map(u => ({ urls: u })) },
        iceGatheringTimeout: 500 },
      logBuiltinEnabled: false, logLevel: "error", userAgentString: "hotline12345-console",
      noAnswerTimeout: 120,
      reconnectionAttempts: 0,  // this phone reconnects by itself (_lost), for ever
      delegate: {
        onInvite: inv => this._invite(inv),
        onDisconnect: err => { console.warn("phone: WebSocket lost", err && err.message); if (err) this._lost(); },
        onConnect: () => { console.info("phone: WebSocket connected"); this._register(); },
      },
    });
    this.registerer = new Registerer(this.ua, { expires: 120, refreshFrequency: 80 });
    this.registerer.stateChange.addListener(s => {
      console.info("phone: registerer", s);
      if (s === RegistererState.Registered) { this.retry = 0; if (!this.session) this.set("registered", null); }
      else if (s === RegistererState.Unregistered && !this.stopped && this.state === "registered") this._lost();
    });
    window.addEventListener("online", () => { if (this.state === "reconnecting") this._reconnect(); });
    this.set("connecting");
    try { await this.ua.start(); }
    catch { this._lost(); }
    return true;
  }

  async _register() {
    try {
      // The registerer may still think itself registered after a drop (no state change):
      // the answer to this REGISTER is what says the phone is reachable again.
      await this.registerer.register({ requestDelegate: {
        onAccept: () => { this.retry = 0; if (!this.session) this.set("registered", null); },
        onReject: r => {
        const code = r.message.statusCode;
        // 401/403 after our credentials: refused for good (wrong agent, changed secret).
        if (code === 401 || code === 403) { this.stopped = true; this.set("failed", { key: "phone.error.refused" }); }
      } } });
    } catch (e) { console.warn("phone: REGISTER failed", e && e.message); this._lost(); }
  }

  _lost() {
    if (this.stopped) return;
    if (!this.session) this.set("reconnecting");
    clearTimeout(this.timer);
    const delay = Math.min(500 * 2 ** this.retry++, 8000);
    this.timer = setTimeout(() => this._reconnect(), delay);
  }

  async _reconnect() {
    clearTimeout(this.timer);
    console.info("phone: reconnecting", this.ua && this.ua.transport.state);
    if (this.stopped || !this.ua) return;
    try { await this.ua.reconnect(); }  // onConnect registers again
    catch (e) { console.warn("phone: reconnect failed", e && e.message); this._lost(); }
  }

  // -- calls ----------------------------------------------------------------------------------

  _invite(inv) {
    if (this.session) { inv.reject({ statusCode: 486 }); return; }
    this.lastInviteAt = Date.now(); this.invites++;
    this.session = inv; this.held = false; this.muted = false; this.chat = [];
    // A video call (the sign-language page's): answered with the camera too.
    this.video = /\bm=video /.test(String(inv.request.body || ""));
    inv.delegate = { onMessage: m => { m.accept(); this.chat.push({ from: "caller", text: String(m.request.body || "") }); this.onChange(this); } };
    this.caseNumber = inv.request.getHeader("X-Hotline-Case") || null;
    inv.stateChange.addListener(s => {
      if (s === SessionState.Established) {
        this._ring(false); this._attach(); this.set("in_call");
      } else if (s === SessionState.Terminated) {
        this._ring(false);
        if (this.session === inv) { this.session = null; this.held = this.muted = false; }
        if (this.audio) this.audio.srcObject = null;
        this.set(this.registerer && this.registerer.state === RegistererState.Registered ? "registered" : "reconnecting");
      }
    });
    this._ring(true);
    this.set("ringing");
  }

  ringing() { return !!this.session && this.state === "ringing"; }
  inCall() { return !!this.session && this.state === "in_call"; }

  async answer() {
    const s = this.session; if (!s || this.state !== "ringing") return false;
    this._ring(false);
    try {
      await s.accept({ sessionDescriptionHandlerOptions: { constraints: { audio: true, video: this.video } } });
      this.error = null; return true;
    } catch (e) {
      // The microphone: refused, missing or busy. Say so; the call keeps ringing in the queue.
      this.set(this.state, { key: micError(e), text: e && e.message });
      return false;
    }
  }

  async hold(on) {
    for (let attempt = 1; ; attempt++) {
      const s = this.session; if (!s || this.state !== "in_call" || this.held === on) return;
      s.sessionDescriptionHandlerOptionsReInvite = { ...(s.sessionDescriptionHandlerOptionsReInvite || {}), hold: on };
      try {
        await new Promise((resolve, reject) => {
          s.invite({ requestDelegate: { onAccept: () => resolve(), onReject: r => reject(Object.assign(
            new Error(`re-INVITE refused (${r.message.statusCode})`), { status: r.message.statusCode })) } })
            .catch(reject);
        });
        break;
      } catch (e) {
        // Asterisk's own re-INVITE crossing ours (491 Request Pending), or one still going on
        // this side: try again after a short random wait (RFC 3261 14.1) rather than leave
        // the caller held when the agent pressed F3 twice in quick succession.
        if (!(e instanceof RequestPendingError || e.status === 491) || attempt >= 5) throw e;
        await new Promise(r => setTimeout(r, 200 + Math.random() * 800));
      }
    }
    this.held = on; this._tracks();
    this.onChange(this);
  }

  mute(on) { this.muted = on; this._tracks(); this.onChange(this); }

  dtmf(tones) {
    const sdh = this.session && this.session.sessionDescriptionHandler;
    // RFC 4733 events in the audio stream (Asterisk's dtmf_mode), not SIP INFO.
    return !!(sdh && this.state === "in_call" && sdh.sendDtmf(tones, { duration: 120, interToneGap: 80 }));
  }

  async hangup() {
    const s = this.session; if (!s) return;
    if (s.state === SessionState.Established) await s.bye();
    else if (s.state === SessionState.Initial || s.state === SessionState.Establishing) await s.reject();
  }

  _tracks() {
    const pc = this.session && this.session.sessionDescriptionHandler && this.session.sessionDescriptionHandler.peerConnection;
    if (!pc) return;
    pc.getSenders().forEach(x => { if (x.track) x.track.enabled = !this.held && !this.muted; });
    pc.getReceivers().forEach(x => { if (x.track) x.track.enabled = !this.held; });
  }

  _attach() {
    const sdh = this.session.sessionDescriptionHandler;
    if (this.audio && sdh) { this.audio.srcObject = sdh.remoteMediaStream; this.audio.play().catch(() => {}); }
    if (this.video && sdh && this.videos) {
      this.videos.remote.srcObject = sdh.remoteMediaStream; this.videos.local.srcObject = sdh.localMediaStream;
    }
  }

  // A line of the call's text chat (SIP MESSAGE in the dialog), for what signing cannot carry.
  async say(text) {
    const s = this.session; if (!s || this.state !== "in_call" || !text) return;
    await s.message({ requestOptions: { body: { contentDisposition: "render", contentType: "text/plain", content: text } } });
    this.chat.push({ from: "me", text }); this.onChange(this);
  }

  // WebRTC statistics of the call (inbound and outbound RTP), for the page and the tests.
  async stats() {
    const pc = this.session && this.session.sessionDescriptionHandler && this.session.sessionDescriptionHandler.peerConnection;
    if (!pc) return null;
    const out = {};
    (await pc.getStats()).forEach(r => {
      if (r.type === "inbound-rtp" || r.type === "outbound-rtp") out[`${r.type}:${r.kind}`] = r;
    });
    return out;
  }

  // The ring: China's ring-back cadence (450 Hz, 1 s on, 4 s off) made with Web Audio; a page
  // the agent has not touched since loading may be refused sound by the browser.
  _ring(on) {
    if (!on || (this.creds && this.creds.ring_sound === false)) {
      if (this.ringer) { clearInterval(this.ringer.timer); this.ringer.ctx.close().catch(() => {}); this.ringer = null; }
      return;
    }
    if (this.ringer) return;
    try {
      const ctx = new AudioContext();
      const beep = () => {
        const osc = ctx.createOscillator(), gain = ctx.createGain();
        osc.frequency.value = 450; gain.gain.value = 0.2;
        osc.connect(gain).connect(ctx.destination);
        osc.start(); osc.stop(ctx.currentTime + 1);
      };
      beep();
      this.ringer = { ctx, timer: setInterval(beep, 5000) };
    } catch { /* no sound: the page still shows the call */ }
  }
}

// getUserMedia's errors, by name, as catalogue keys (phone.error.*).
export function micError(e) {
  const name = e && e.name;
  if (name === "NotAllowedError" || name === "SecurityError") return "phone.error.mic_denied";
  if (name === "NotFoundError" || name === "OverconstrainedError") return "phone.error.mic_missing";
  if (name === "NotReadableError" || name === "AbortError") return "phone.error.mic_busy";
  if (!window.isSecureContext) return "phone.error.insecure";
  return "phone.error.media";
}
