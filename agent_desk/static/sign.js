// The sign-language page (手语座席, public, no sign-in): a deaf or hard-of-hearing caller starts
// a video call to the seat shared by every city; a text chat (SIP MESSAGE in the call) carries
// what signing cannot. Each call asks the service for a one-time ticket (limited per address).
import { Inviter, SessionState, UserAgent } from "./vendor/sip.js/lib/index.js";
import { $, api, say, startPage } from "./app.js";
import { t } from "./i18n.js";
import { micError } from "./phone.js";

let UA = null, CALL = null, STATE = "idle";
const CHAT = [];

function setState(s) {
  STATE = s;
  const b = $("status"); b.dataset.state = s; b.textContent = t("sign.state." + s);
  $("start").disabled = s === "calling" || s === "in_call";
  $("end").disabled = !(s === "calling" || s === "in_call");
  $("chat-text").disabled = $("chat-send").disabled = s !== "in_call";
}
function renderChat() {
  $("chat").replaceChildren(...CHAT.map(m => {
    const d = document.createElement("div");
    d.className = m.from === "me" ? "agent" : "caller"; d.dataset.from = m.from;
    d.textContent = t(m.from === "me" ? "sign.me" : "sign.seat") + "：" + m.text;
    return d;
  }));
}

async function start() {
  say("msg", "");
  let c;
  try { c = await api("POST", "/api/sign-language/call"); }
  catch (e) { say("msg", e.message); return; }
  setState("calling");
  try {
    UA = new UserAgent({
      uri: UserAgent.makeURI(c.uri), authorizationUsername: c.username, authorizationPassword: c.password,
      transportOptions: { server: c.ws_url }, logBuiltinEnabled: false, logLevel: "error", reconnectionAttempts: 0,
      sessionDescriptionHandlerFactoryOptions: {
        peerConnectionConfiguration: { iceServers: (c.ice_servers || []).map(u => ({ urls: u })) }, iceGatheringTimeout: 500 },
    });
    await UA.start();
    CALL = new Inviter(UA, UserAgent.makeURI(c.target), {
      extraHeaders: [`X-Hotline-Ticket: ${c.ticket}`],
      sessionDescriptionHandlerOptions: { constraints: { audio: true, video: true } },
      delegate: { onMessage: m => { m.accept(); CHAT.push({ from: "seat", text: m.request.body }); renderChat(); } },
    });
    CALL.stateChange.addListener(s => {
      if (s === SessionState.Established) {
        const sdh = CALL.sessionDescriptionHandler;
        $("remote").srcObject = sdh.remoteMediaStream; $("local").srcObject = sdh.localMediaStream;
        setState("in_call");
      } else if (s === SessionState.Terminated) { setState("ended"); UA.stop().catch(() => {}); }
    });
    await CALL.invite();
  } catch (e) { say("msg", t(micError(e))); setState("ended"); }
}

async function send(ev) {
  ev.preventDefault();
  const text = $("chat-text").value.trim(); if (!text || !CALL) return;
  await CALL.message({ requestOptions: { body: { contentDisposition: "render", contentType: "text/plain", content: text } } });
  CHAT.push({ from: "me", text }); $("chat-text").value = ""; renderChat();
}

await startPage();
setState("idle");
$("start").onclick = start;
$("end").onclick = () => { if (CALL) (CALL.state === SessionState.Established ? CALL.bye() : CALL.cancel()).catch(() => {}); };
$("chat-form").addEventListener("submit", send);
document.addEventListener("langchange", () => { setState(STATE); renderChat(); });
// For the tests: the call's WebRTC statistics.
window.signCall = {
  state: () => STATE,
  ua: () => UA,
  stats: async () => {
    const pc = CALL && CALL.sessionDescriptionHandler && CALL.sessionDescriptionHandler.peerConnection;
    if (!pc) return null;
    const out = {};
    (await pc.getStats()).forEach(r => { if (r.type === "inbound-rtp" || r.type === "outbound-rtp") out[`${r.type}:${r.kind}`] = r; });
    return out;
  },
};
