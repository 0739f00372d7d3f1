"""A minimal SIP user agent over UDP that keeps every message it receives, for tests that must
see exactly what Asterisk sends to an outside party (pjsua2 hides headers of in-dialog requests
it handles itself). It places one call, answers digest challenges, acknowledges the answer,
accepts whatever Asterisk sends in the dialog (re-INVITE, UPDATE) and ends on BYE."""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from dataclasses import dataclass, field


@dataclass
class SipMessage:
    raw: str
    first_line: str
    headers: list[tuple[str, str]]
    body: str

    @property
    def status(self) -> int:
        """The response code (0 for a request)."""
        parts = self.first_line.split(" ", 2)
        return int(parts[1]) if self.first_line.startswith("SIP/2.0") else 0

    @property
    def method(self) -> str:
        return "" if self.first_line.startswith("SIP/2.0") else self.first_line.split(" ")[0]

    def header(self, name: str) -> str:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return ""

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


def parse(raw: str) -> SipMessage:
    head, _, body = raw.partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return SipMessage(raw, lines[0], headers, body)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # SIP digest is MD5


def digest_authorization(challenge: str, *, method: str, uri: str, user: str,
                         password: str) -> str:
    """The Authorization value answering one ``Digest`` challenge (RFC 2617, qop=auth)."""
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge.removeprefix("Digest ")))
    realm, nonce = params["realm"], params["nonce"]
    ha1 = _md5(f"{user}:{realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    cnonce = secrets.token_hex(8)
    out = f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}"'
    if "auth" in params.get("qop", "").split(","):
        response = _md5(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}")
        out += f', qop=auth, nc=00000001, cnonce="{cnonce}"'
    else:
        response = _md5(f"{ha1}:{nonce}:{ha2}")
    out += f', response="{response}", algorithm=MD5'
    if "opaque" in params:
        out += f', opaque="{params["opaque"]}"'
    return out


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, inbox: asyncio.Queue[SipMessage]):
        self.inbox = inbox

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.inbox.put_nowait(parse(data.decode("utf-8", errors="replace")))


@dataclass
class RawCaller:
    """One call from ``number`` to ``uri`` at ``server`` (host, port)."""

    server: tuple[str, int]
    number: str
    host: str = "127.0.0.1"
    received: list[SipMessage] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.inbox: asyncio.Queue[SipMessage] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0
        self.call_id = f"{secrets.token_hex(10)}@{self.host}"
        self.tag = secrets.token_hex(6)
        self.cseq = 0
        self.remote_tag = ""
        self.remote_target = ""

    async def start(self) -> RawCaller:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self.inbox), local_addr=(self.host, 0))
        self.transport = transport
        self.port = int(transport.get_extra_info("sockname")[1])
        return self

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def send(self, text: str) -> None:
        assert self.transport is not None
        self.transport.sendto(text.encode(), self.server)

    async def next(self, timeout: float) -> SipMessage:
        msg = await asyncio.wait_for(self.inbox.get(), timeout)
        self.received.append(msg)
        return msg

    def sdp(self, *, srtp: bool = False) -> str:
        profile = "RTP/SAVP" if srtp else "RTP/AVP"
        crypto = ("a=crypto:1 AES_CM_128_HMAC_SHA1_80 "
                  "inline:" + "MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1ub3BxcnN0\r\n") if srtp else ""
        rtp = self.port + 2
        return (f"v=0\r\no=- 1 1 IN IP4 {self.host}\r\ns=-\r\nc=IN IP4 {self.host}\r\n"
                f"t=0 0\r\nm=audio {rtp} {profile} 8 101\r\n{crypto}a=rtpmap:8 PCMA/8000\r\n"
                "a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n")

    def _invite(self, uri: str, headers: dict[str, str], body: str, branch: str,
                authorization: str | None) -> str:
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        if authorization:
            extra += f"Authorization: {authorization}\r\n"
        return (f"INVITE {uri} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {self.host}:{self.port};rport;branch={branch}\r\n"
                f"From: <sip:{self.number}@{self.host}>;tag={self.tag}\r\n"
                f"To: <{uri}>\r\nCall-ID: {self.call_id}\r\nCSeq: {self.cseq} INVITE\r\n"
                f"Contact: <sip:{self.number}@{self.host}:{self.port}>\r\nMax-Forwards: 70\r\n"
                "Allow: INVITE, ACK, BYE, CANCEL, UPDATE, OPTIONS\r\n"
                f"{extra}Content-Type: application/sdp\r\n"
                f"Content-Length: {len(body.encode())}\r\n\r\n{body}")

    def _ack(self, uri: str, to: str, branch: str, cseq: int) -> str:
        return (f"ACK {uri} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {self.host}:{self.port};rport;branch={branch}\r\n"
                f"From: <sip:{self.number}@{self.host}>;tag={self.tag}\r\nTo: {to}\r\n"
                f"Call-ID: {self.call_id}\r\nCSeq: {cseq} ACK\r\nMax-Forwards: 70\r\n"
                "Content-Length: 0\r\n\r\n")

    async def invite(self, uri: str, *, headers: dict[str, str] | None = None,
                     auth: tuple[str, str] | None = None, srtp: bool = False,
                     timeout: float = 20) -> SipMessage:
        """Send the INVITE (answering one digest challenge with ``auth``) and return the final
        response; a 2xx is acknowledged and the dialog kept for ``serve_until_bye``."""
        authorization: str | None = None
        for _ in range(2):
            self.cseq += 1
            branch = "z9hG4bK" + secrets.token_hex(8)
            self.send(self._invite(uri, headers or {}, self.sdp(srtp=srtp), branch,
                                   authorization))
            while True:
                msg = await self.next(timeout)
                if msg.status and msg.status < 200:
                    continue
                if msg.status == 0:
                    continue  # a request before the answer (OPTIONS): not expected here
                break
            if msg.status >= 300:
                self.send(self._ack(uri, msg.header("To"), branch, self.cseq))
            if msg.status == 401 and auth is not None and authorization is None:
                challenge = next(c for c in msg.all("WWW-Authenticate")
                                 if "MD5" in c.upper() or "algorithm" not in c)
                authorization = digest_authorization(challenge, method="INVITE", uri=uri,
                                                     user=auth[0], password=auth[1])
                continue
            if 200 <= msg.status < 300:
                to = msg.header("To")
                self.remote_tag = to.split("tag=")[-1]
                self.remote_target = msg.header("Contact").strip("<>").split(">")[0]
                self.send(self._ack(self.remote_target, to,
                                    "z9hG4bK" + secrets.token_hex(8), self.cseq))
            return msg
        return msg

    def _reply(self, req: SipMessage, *, sdp: bool) -> None:
        body = self.sdp() if sdp else ""
        vias = "".join(f"Via: {v}\r\n" for v in req.all("Via"))
        extra = "Content-Type: application/sdp\r\n" if body else ""
        self.send(f"SIP/2.0 200 OK\r\n{vias}From: {req.header('From')}\r\n"
                  f"To: {req.header('To')}\r\nCall-ID: {req.header('Call-ID')}\r\n"
                  f"CSeq: {req.header('CSeq')}\r\n"
                  f"Contact: <sip:{self.number}@{self.host}:{self.port}>\r\n{extra}"
                  f"Content-Length: {len(body.encode())}\r\n\r\n{body}")

    async def serve_until_bye(self, timeout: float) -> None:
        """Accept whatever Asterisk sends in the dialog until it hangs up (BYE)."""
        while True:
            msg = await self.next(timeout)
            if msg.method in ("INVITE", "UPDATE"):
                self._reply(msg, sdp=bool(msg.body.strip()) or msg.method == "INVITE")
            elif msg.method in ("BYE", "OPTIONS", "INFO", "NOTIFY"):
                self._reply(msg, sdp=False)
                if msg.method == "BYE":
                    return
