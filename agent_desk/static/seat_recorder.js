// The sign-language seat's video call recorded in the seat's console ([sign_language]
// record_video, docs/webrtc.md): the caller's picture large and the seat's own small on a
// canvas, both voices mixed with Web Audio, MediaRecorder's WebM uploaded piece by piece as it
// comes (PUT /api/sign-language/video/<case>/<seq>), so a reload or a crash of the page loses
// at most the piece being recorded. The call's end closes the recording. A piece that does
// not go through is tried again (with the next piece too); the agent sees why.
const W = 640, H = 360, FPS = 10, SLICE_MS = 3000, TRIES = 3;
const TYPES = ["video/webm;codecs=vp8,opus", "video/webm;codecs=vp9,opus", "video/webm"];

// States: off, recording, closing, done, failed (the server refused: nothing more is sent).
export class SeatRecorder {
  constructor({ api, onChange }) {
    this.api = api; this.onChange = onChange || (() => {});
    this.state = "off"; this.error = null; this.owner = null;
  }

  set(state, error) { this.state = state; if (error !== undefined) this.error = error; this.onChange(this); }
  active() { return this.state === "recording" || this.state === "closing"; }

  // ``owner``: the call recorded (one recording per call); ``big``/``small``: the playing
  // <video> elements; ``voices``: the MediaStreams whose audio is mixed in.
  start(owner, big, small, voices) {
    const type = window.MediaRecorder && TYPES.find(t => MediaRecorder.isTypeSupported(t));
    this.owner = owner; this.case = null; this.seq = 0; this.sent = 0; this.pending = []; this.busy = false;
    if (!type) { this.set("failed", { key: "record.error.unsupported" }); return; }
    const canvas = document.createElement("canvas"); canvas.width = W; canvas.height = H;
    const g = canvas.getContext("2d");
    const draw = () => {
      g.fillStyle = "#000"; g.fillRect(0, 0, W, H);
      fit(g, big, 0, 0, W, H);
      fit(g, small, W * 3 / 4 - 8, H * 3 / 4 - 8, W / 4, H / 4);
    };
    draw(); this.timer = setInterval(draw, 1000 / FPS);
    this.audio = new AudioContext();
    const mix = this.audio.createMediaStreamDestination();
    for (const s of voices) {
      if (s && s.getAudioTracks().length) this.audio.createMediaStreamSource(new MediaStream(s.getAudioTracks())).connect(mix);
    }
    const stream = new MediaStream([...canvas.captureStream(FPS).getVideoTracks(), ...mix.stream.getAudioTracks()]);
    this.rec = new MediaRecorder(stream, { mimeType: type, videoBitsPerSecond: 800000, audioBitsPerSecond: 32000 });
    this.rec.ondataavailable = ev => { if (ev.data && ev.data.size) { this.pending.push({ seq: this.seq++, blob: ev.data }); this.flush(); } };
    this.rec.onstop = () => { this.stopped = true; this.flush(); };
    this.stopped = false;
    this.rec.start(SLICE_MS);
    this.set("recording", null);
  }

  // The call's case, once the console knows it: pieces wait for it.
  setCase(number) { if (number && !this.case && this.active()) { this.case = number; this.flush(); } }

  stop() {
    if (!this.active() || this.state === "closing") return;
    clearInterval(this.timer);
    this.set("closing");
    if (this.rec.state !== "inactive") this.rec.stop(); else { this.stopped = true; this.flush(); }
    this.audio.close().catch(() => {});
  }

  // Uploads the pieces in order, then (after the recorder's last piece) the close.
  async flush() {
    if (this.busy || !this.case || !this.active()) return;
    this.busy = true;
    try {
      while (this.pending.length) {
        const p = this.pending[0];
        if (!await this._try(() => this.api("PUT", `/api/sign-language/video/${encodeURIComponent(this.case)}/${p.seq}`, p.blob))) return;
        this.pending.shift(); this.sent = p.seq + 1;
        if (this.error) this.set(this.state, null);
      }
      if (this.stopped && this.state === "closing") {
        if (await this._try(() => this.api("POST", `/api/sign-language/video/${encodeURIComponent(this.case)}`, { pieces: this.seq }))) this.set("done", null);
      }
    } finally { this.busy = false; }
  }

  // One request, tried TRIES times over network errors and busy answers; a refusal stops the
  // recording. False if it did not go through (the next piece or the call's end tries again).
  async _try(request) {
    for (let i = 0; i < TRIES; i++) {
      try { await request(); return true; }
      catch (e) {
        const again = !e.status || e.status >= 500 || e.status === 429;
        if (!again) { this.pending = []; this.set("failed", { key: "record.error.refused", text: e.message }); this._halt(); return false; }
        this.set(this.state, { key: "record.error.upload", text: e.message });
        if (i + 1 < TRIES) await new Promise(r => setTimeout(r, 500 * 2 ** i));
      }
    }
    // After the call: keep trying the close a while (the pieces are already on the server).
    if (this.stopped) setTimeout(() => this.flush(), 3000);
    return false;
  }

  _halt() {
    clearInterval(this.timer);
    if (this.rec && this.rec.state !== "inactive") { this.rec.ondataavailable = null; this.rec.stop(); }
    if (this.audio) this.audio.close().catch(() => {});
  }
}

// The picture of a <video> inside the box, its aspect kept.
function fit(g, video, x, y, w, h) {
  const vw = video.videoWidth, vh = video.videoHeight;
  if (!vw || !vh || video.readyState < 2) return;
  const s = Math.min(w / vw, h / vh), dw = vw * s, dh = vh * s;
  g.drawImage(video, x + (w - dw) / 2, y + (h - dh) / 2, dw, dh);
}
