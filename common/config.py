"""The project's one configuration file (TOML), validated at start.

Every error names the key that is wrong (``agents[2].skills.general``) so an operator can fix the
file without reading code. Secrets never live in the file: it names the environment variables
that hold them, and ``${VAR}`` inside URLs is expanded from the environment.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import re
import ssl
import tomllib
from datetime import date, time
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

ID = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
DIGITS = Annotated[str, Field(pattern=r"^[0-9]{2,20}$")]
PORT = Annotated[int, Field(ge=1, le=65535)]
SKILL_LEVEL = Annotated[int, Field(ge=1, le=5)]

PROVINCE_POOL = "province"


class ConfigError(Exception):
    """A configuration problem, worded for the operator who has to fix it."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServiceSection(_Section):
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = "json"
    # Where instances, recordings and the default SQLite database live; relative to the file.
    data_dir: Path = Path("var")
    # Case numbers and the console's clocks use the hotline's local time.
    timezone: str = "Asia/Shanghai"

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v


class DatabaseSection(_Section):
    url: str = "sqlite+aiosqlite:///{data_dir}/hotline.db"

    @field_validator("url")
    @classmethod
    def _driver(cls, v: str) -> str:
        if not v.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "must start with sqlite+aiosqlite:// or postgresql+asyncpg:// (async drivers)"
            )
        return v


class RedisSection(_Section):
    # redis://[user]:${HOTLINE_REDIS_PASSWORD}@host:port/db for Redis AUTH (the password from
    # the environment), rediss://... for TLS (checked against tls_ca, else the system's CAs).
    url: str = "redis://127.0.0.1:6379/0"
    # Every key and channel starts with this, so several deployments can share one Redis.
    prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")] = "hotline"
    # The CA (PEM) that signed the Redis server's certificate, for rediss:// URLs.
    tls_ca: Path | None = None

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// (TLS) or unix://")
        return v

    @model_validator(mode="after")
    def _tls(self) -> RedisSection:
        if self.tls_ca is not None and not self.url.startswith("rediss://"):
            raise ValueError("tls_ca is only used with a rediss:// (TLS) url")
        return self


class SipTlsSection(_Section):
    """SIP over TLS with SRTP media (docs/security.md). Each node listens for TLS on its
    sip_tls_port with this certificate; without cert/key the service makes a self-signed
    one in <data_dir>/tls when it renders Asterisk's configuration (enough for nodes
    rendered by one service: they trust the same certificate)."""

    # Inter-node trunks (agents lent across cities) carry callers' voices between sites:
    # TLS-only signalling and SRTP media, on unless turned off.
    internode: bool = True
    # Agents' endpoints require SRTP (softphones must then register over TLS).
    agents: bool = False
    # Carrier and handover trunks require SRTP (the carrier's SBC must call over TLS).
    carriers: bool = False
    # PEM files; relative paths are under the configuration file's folder.
    cert: Path | None = None
    key: Path | None = None
    # Who signed the peers' certificates (default: cert itself, for a self-signed one).
    ca: Path | None = None

    @model_validator(mode="after")
    def _pair(self) -> SipTlsSection:
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key go together (both PEM files, or neither for a "
                             "self-signed certificate made by the service)")
        return self


def _network_list(v: list[str]) -> list[str]:
    for item in v:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError as exc:
            raise ValueError(f"{item!r} is not an IP address or CIDR network") from exc
    return v


LOOPBACK_AND_PRIVATE = ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12",
                        "192.168.0.0/16", "fc00::/7"]


class SecuritySection(_Section):
    """Names of environment variables holding secrets (never the secrets themselves), and who
    may reach the SIP endpoints (docs/security.md)."""

    ami_secret_env: str = "HOTLINE_AMI_SECRET"
    sip_secret_env: str = "HOTLINE_SIP_SECRET"
    # 32 random bytes (hex or base64), checked at start: random_key_weakness.
    data_key_env: str = "HOTLINE_DATA_KEY"
    # Earlier data keys, whitespace-separated, still accepted for decryption while
    # `hotline privacy rekey` re-encrypts everything with the current key.
    data_key_previous_env: str = "HOTLINE_DATA_KEY_PREVIOUS"
    # Networks agents' softphones register and call from (SIP ACL on every agent endpoint:
    # the source address and the Contact). Anything else gets 403 before any password check.
    agent_networks: list[str] = LOOPBACK_AND_PRIVATE
    # Where trunks recognised by a header (match_header) may send from: their SBCs. Trunks
    # recognised by address are limited to their own `match` networks.
    trunk_networks: list[str] = ["127.0.0.0/8", "::1/128"]

    @field_validator("agent_networks", "trunk_networks")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one network (an empty list would refuse everyone)")
        return _network_list(v)


class FastAgiSection(_Section):
    bind_host: str = "127.0.0.1"
    port: PORT = 4573
    # The address Asterisk dials for FastAGI (differs from bind_host behind NAT or in containers).
    asterisk_reaches: str = "127.0.0.1"
    # The router answers within this budget or the call takes the default queue.
    decision_timeout_ms: Annotated[int, Field(ge=10, le=5000)] = 500
    # Asterisk gives up on the service after this long and the dialplan falls back on its own.
    dialplan_timeout_s: Annotated[int, Field(ge=1, le=30)] = 3


class NodeConfig(_Section):
    """One Asterisk node (one per city in production)."""

    id: ID
    # managed: this project renders the config and runs Asterisk (chroot or installed);
    # external: Asterisk is run by someone else (a container); we only connect to AMI.
    mode: Literal["managed", "external"] = "managed"
    sip_host: str = "127.0.0.1"
    sip_port: PORT = 5060
    # SIP over TLS ([sip_tls]); default sip_port + 1.
    sip_tls_port: PORT | None = None
    # SIP over secure WebSocket for browsers' phones ([webrtc]); default sip_port + 3029
    # (8089 beside 5060, Asterisk's usual port). Asterisk's web server also listens on the
    # loopback on the next port (it starts TLS only beside a plain listener).
    wss_port: PORT | None = None
    ami_host: str = "127.0.0.1"
    ami_port: PORT = 5038
    ami_username: Annotated[str, Field(pattern=r"^[A-Za-z0-9_]{1,32}$")] = "hotline"
    rtp_start: PORT = 10000
    rtp_end: PORT = 10999
    # Asterisk's CEL database as this service sees it (external nodes: a shared volume).
    # Managed nodes default to their instance directory.
    cel_path: Path | None = None
    # AMI over TLS, required when ami_host is not a loopback address (AMI carries callers'
    # numbers and can place calls). The service connects to ami_host:ami_tls_port and checks
    # the certificate against ami_tls_ca (default: ami_tls_cert, for a self-signed one) and
    # the name ami_tls_server_name (default: ami_host). Managed nodes render Asterisk's TLS
    # listener from ami_tls_cert / ami_tls_key (PEM files); the plain listener then stays on
    # 127.0.0.1:ami_port.
    ami_tls: bool = False
    ami_tls_port: PORT | None = None
    ami_tls_cert: Path | None = None
    ami_tls_key: Path | None = None
    ami_tls_ca: Path | None = None
    ami_tls_server_name: str | None = None
    # Networks the service logs in to AMI from over TLS (Asterisk's permit=); the loopback is
    # always allowed.
    ami_clients: list[str] = []

    @field_validator("ami_clients")
    @classmethod
    def _clients(cls, v: list[str]) -> list[str]:
        return _network_list(v)

    @model_validator(mode="after")
    def _ranges(self) -> NodeConfig:
        if self.rtp_end <= self.rtp_start:
            raise ValueError("rtp_end must be above rtp_start")
        if not self.ami_tls and not is_loopback(self.ami_host):
            raise ValueError(
                f"ami_host {self.ami_host!r} is not a loopback address: AMI must stay on the "
                "loopback (127.0.0.1, ::1) unless ami_tls = true with ami_tls_port and a "
                "certificate (ami_tls_cert, ami_tls_key)")
        if self.ami_tls:
            missing = [k for k in ("ami_tls_port", "ami_tls_cert")
                       if getattr(self, k) is None]
            if self.mode == "managed" and self.ami_tls_key is None:
                missing.append("ami_tls_key")
            if self.mode == "external" and self.ami_tls_ca is None and \
                    self.ami_tls_cert is None:
                missing.append("ami_tls_ca")
            if missing:
                raise ValueError(f"ami_tls needs {', '.join(missing)}")
            if self.ami_tls_port == self.ami_port:
                raise ValueError("ami_tls_port must differ from ami_port (the plain AMI "
                                 "listener stays on the loopback)")
        return self

    @property
    def tls_port(self) -> int:
        """Where the node listens for SIP over TLS."""
        return self.sip_tls_port or self.sip_port + 1

    @property
    def webrtc_port(self) -> int:
        """Where the node listens for SIP over secure WebSocket (browsers' phones)."""
        return self.wss_port or self.sip_port + 3029

    @property
    def ami_plain_host(self) -> str:
        """Where Asterisk's plain (unencrypted) AMI listens: the loopback when TLS is on."""
        return "127.0.0.1" if self.ami_tls else self.ami_host

    def ami_endpoint(self) -> tuple[str, int]:
        """Where the service connects to AMI."""
        if self.ami_tls and self.ami_tls_port:
            return self.ami_host, self.ami_tls_port
        return self.ami_host, self.ami_port

    def ami_ssl_context(self, base_dir: Path) -> ssl.SSLContext | None:
        """The client side of AMI over TLS (None: plain, on the loopback). Relative paths
        are under the configuration file's folder."""
        if not self.ami_tls:
            return None
        ca = self.ami_tls_ca or self.ami_tls_cert
        assert ca is not None
        path = ca if ca.is_absolute() else base_dir / ca
        try:
            ctx = ssl.create_default_context(cafile=str(path))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"nodes.{self.id}.ami_tls_ca: cannot load {path}: {exc}"
                              ) from None
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    @property
    def ami_server_name(self) -> str:
        return self.ami_tls_server_name or self.ami_host


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: not provably the loopback


class CityConfig(_Section):
    id: ID
    name: str
    node: ID
    area_codes: list[Annotated[str, Field(pattern=r"^0[0-9]{2,3}$")]] = []
    # The city's districts (区/县/县级市) by id, with the names people read: a case's place is
    # chosen from them (none configured: any district id is taken as given).
    districts: dict[ID, str] = {}


class TrunkConfig(_Section):
    """Where calls come from. ``carrier`` trunks bring public callers of one city; ``handover``
    trunks bring calls that emergency lines or branch centers pass to 12345."""

    id: ID
    node: ID
    kind: Literal["carrier", "handover"] = "carrier"
    city: ID | None = None
    # Source addresses (IP or CIDR) and/or a header the SBC adds ("X-Hotline-Trunk: nanjing").
    match: list[str] = []
    match_header: str | None = None
    # For handover trunks: which line hands calls over (e.g. "119").
    referring_line: str | None = None

    @field_validator("match")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        return _network_list(v)

    @field_validator("match_header")
    @classmethod
    def _header(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z0-9-]+: ?\S.*", v):
            raise ValueError('must look like "X-Header-Name: value"')
        return v

    @model_validator(mode="after")
    def _identified(self) -> TrunkConfig:
        if not self.match and not self.match_header:
            raise ValueError("needs match (source addresses) or match_header to recognise calls")
        return self


class NumberConfig(_Section):
    """A number callers dial: 12345 itself or a merged hotline kept in parallel (双号并行)."""

    number: DIGITS
    skill: ID
    name: str = ""
    # A city's own DID: calls to it come from that city whatever trunk brings them.
    city: ID | None = None


class MenuConfig(_Section):
    """The one short prompt and its one optional key. Silence goes straight on.

    ``first = "queue"`` (docs/caller-side.md): the caller is in the queue of their city as
    soon as the call is answered; the prompt is the first thing heard while waiting, and a key
    pressed during the wait moves the caller to the chosen skill's queue, keeping the place
    their first arrival earned. ``"menu"``: the earlier dialplan, prompt and key window first
    (kept for comparison, bench/caller_entry.py)."""

    prompt: str = "您好，幺二三四五。企业服务按一，外语服务按二，其他请稍候。"
    keys: dict[Annotated[str, Field(pattern=r"^[0-9]$")], ID] = {}
    # The key window after the prompt (menu first only; queue first takes keys while waiting).
    timeout_s: Annotated[float, Field(ge=0.5, le=10)] = 1.5
    first: Literal["queue", "menu"] = "queue"


class RatingSection(_Section):
    """一键评价: when the agent hangs up first, the caller hears one short prompt and rates the
    call with one key (asterisk-conf/extensions.conf.j2 [hotline-rating], telephony/calls)."""

    enabled: bool = True
    prompt: str = "满意请按1，基本满意请按2，不满意请按3。"
    # How long the caller has for the key once the prompt has played.
    timeout_s: Annotated[float, Field(ge=1, le=15)] = 5.0
    thanks: str = "感谢您的评价，再见。"


class AnnounceSection(_Section):
    """Position and expected wait told to callers waiting in a queue (queueing/announce,
    docs/caller-side.md): at entry when the expected wait is over ``threshold_s``, then every
    ``every_s`` seconds. Whispered over the music (only the caller hears it)."""

    enabled: bool = True
    # At entry: only a wait at least this long is announced (0: always).
    threshold_s: Annotated[float, Field(ge=0, le=3600)] = 60.0
    # Then every so many seconds (0: only at entry).
    every_s: Annotated[float, Field(ge=0, le=3600)] = 60.0
    # After the prompt the caller hears first (queue first), this much later.
    first_after_s: Annotated[float, Field(ge=0, le=600)] = 1.0
    # Average talk time until Asterisk has one for the queue (seconds).
    aht_s: Annotated[float, Field(ge=10, le=3600)] = 180.0
    text: str = "您目前排在第{position}位，预计等待约{minutes}分钟。"

    @field_validator("text")
    @classmethod
    def _text(cls, v: str) -> str:
        try:
            v.format(position=1, minutes=1)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"may only use {{position}} and {{minutes}}: {exc}") from exc
        return v


class NobodySection(_Section):
    """Nobody there (docs/caller-side.md): with no agent signed in or all paused the caller
    does not wait in an empty queue but goes on to the next (the city's general pool, then the
    province's); when the last one is empty too, or after ``max_wait_s`` in all, Asterisk
    offers a callback (key 1) or a recorded message (留言: key 2, or no key), which becomes
    the case's recording and transcript and a callback task. All of it in the dialplan: it
    works with the service away."""

    # "offer": empty queues are left at once (joinempty/leavewhenempty: paused, invalid,
    # unavailable); "wait": callers wait in an empty queue until max_wait_s.
    when_empty: Literal["offer", "wait"] = "offer"
    # Longest wait from the first queue before the offer, whatever the queues' plan says.
    max_wait_s: Annotated[int, Field(ge=30, le=7200)] = 600
    offer: str = "现在坐席繁忙，暂时无法接听。需要我们给您回电请按1，留言请按2。"
    offer_timeout_s: Annotated[float, Field(ge=1, le=20)] = 5.0
    message_prompt: str = "请在提示音后留言，说完请按井号键或直接挂机。"
    message_max_s: Annotated[int, Field(ge=10, le=600)] = 120
    # Silence that ends a message (seconds).
    message_silence_s: Annotated[int, Field(ge=2, le=30)] = 5
    thanks: str = "已为您登记，我们会尽快给您回电，再见。"


class KeepPlaceSection(_Section):
    """Keep my place (排队回呼, docs/caller-side.md): after ``offer_after_s`` of waiting the
    caller may press ``key`` and hang up; a placeholder keeps their place in the queue (in
    Asterisk: it survives a service restart), and when an agent takes it the agent hears the
    case, then the caller is dialled ([follow_up] dial over the caller's trunk). Not reached:
    tried again ``retry_after_s`` later at the head of the queue, ``attempts`` times in all,
    then a callback task."""

    enabled: bool = True
    key: Annotated[str, Field(pattern=r"^[0-9*#]$")] = "9"
    offer_after_s: Annotated[int, Field(ge=0, le=3600)] = 60
    # Said after the position announcement once the offer stands (queueing/announce).
    offer: str = "如不想继续等待，请按9挂机，轮到您时我们给您回电，排队位置保持不变。"
    confirm: str = "好的，轮到您时我们会给您回电，请保持电话畅通，再见。"
    # What the agent hears before the caller is dialled (the case number follows when the
    # service could make it).
    whisper: str = "排队回呼。"
    attempts: Annotated[int, Field(ge=1, le=10)] = 3
    retry_after_s: Annotated[int, Field(ge=5, le=3600)] = 120
    ring_s: Annotated[int, Field(ge=5, le=120)] = 30
    # How long a placeholder may wait for an agent before it becomes a callback task.
    max_wait_s: Annotated[int, Field(ge=60, le=86400)] = 4 * 3600


class AgentConfig(_Section):
    id: Annotated[str, Field(pattern=r"^[0-9]{3,8}$")]  # also the SIP extension
    name: str
    city: ID
    skills: dict[ID, SKILL_LEVEL]
    # Other cities whose general pool this agent also serves.
    pools: list[ID] = []
    # Joins its queues when the service starts (a console sign-in does the same later).
    auto_login: bool = True
    # The team (班组) the agent's figures are summed in; "" for none (docs/agent-figures.md).
    team: Annotated[str, Field(max_length=32)] = ""
    # Where the agent's calls ring: "sip", a SIP phone (the pjsua2 softphone, a desk phone)
    # over UDP/TLS; "browser", the console's own phone over WebRTC (docs/webrtc.md): the
    # endpoint then speaks DTLS-SRTP with ICE over the node's secure WebSocket.
    phone: Literal["sip", "browser"] = "sip"


class SupervisorConfig(_Section):
    """A supervisor's desk phone (班长席): rung by the service to listen to, whisper to or
    barge into an agent's call (docs/monitoring.md). Not a queue member."""

    id: Annotated[str, Field(pattern=r"^[0-9]{3,8}$")]  # the SIP extension
    name: str
    city: ID
    # The console user whose phone this is (a user of role supervisor).
    user: Annotated[str, Field(min_length=1, max_length=64)]


class SupervisionSection(_Section):
    """Listening, whispering and barging (监听、耳语、强插; docs/monitoring.md)."""

    # Whether the agent's console shows that a supervisor is on the call, and how.
    agent_sees_monitoring: bool = False
    # How long the supervisor's phone rings before the attempt is given up.
    ring_timeout_s: Annotated[int, Field(ge=5, le=120)] = 20


class WebrtcSection(_Section):
    """The console's phone in the browser (docs/webrtc.md). A node whose agents include one
    with ``phone = "browser"`` listens for SIP over secure WebSocket on its wss_port, with
    the [sip_tls] certificate (self-signed by the service unless one is configured)."""

    # The address browsers reach each node's WebSocket at, by node id, when it is not the
    # node's own (a reverse proxy, a public name): "wss://sip.12345.example.gov.cn/ws".
    # Default: wss://<the console's host>:<wss_port>/ws.
    urls: dict[ID, Annotated[str, Field(pattern=r"^wss://[^\s]+$")]] = {}
    # ICE servers the browser uses (STUN/TURN URLs) when it is not on the node's network.
    ice_servers: list[Annotated[str, Field(pattern=r"^(stun|turn|turns):[^\s]+$")]] = []
    # Ring the page with a sound when a call comes in.
    ring_sound: bool = True


class SignLanguageSection(_Section):
    """The sign-language seat (手语座席, docs/webrtc.md): a public page at /sign where a deaf
    or hard-of-hearing caller starts a video call into the skill's queue of the province
    pool, shared by every city. Each call needs a one-time ticket from the page's API, which
    is rate limited per address."""

    enabled: bool = False
    # The number the router sees for these calls: a [[numbers]] entry with this skill.
    number: DIGITS = "12345"
    skill: ID = "sign_language"
    # The node the public page's calls go to (default: the first).
    node: ID | None = None
    calls_per_address: Annotated[int, Field(ge=1, le=10_000)] = 10
    window_s: Annotated[int, Field(ge=60, le=86400)] = 3600
    ticket_ttl_s: Annotated[int, Field(ge=10, le=600)] = 120
    # The seat's console records the call's video (both pictures, both voices) and uploads it
    # as it goes; it is sealed at rest beside the audio recordings and played like them.
    record_video: bool = False


class QueueingSection(_Section):
    # Where a call goes when the router cannot be asked (service down, error, timeout).
    fallback_skill: ID = "general"
    ring_timeout_s: Annotated[int, Field(ge=5, le=120)] = 15
    wrapup_s: Annotated[int, Field(ge=0, le=600)] = 0
    strategy: Literal["rrmemory", "leastrecent", "fewestcalls", "random", "linear"] = "leastrecent"


class RelaxConfig(_Section):
    """How long a caller waits before the call is offered more widely (seconds from joining
    the first queue). Each step is applied by Asterisk itself: a queue rule widens the skill
    levels, queue timeouts move the call on to the next queue."""

    # First offered only to agents with at least this level of the skill.
    min_level: SKILL_LEVEL = 3
    lower_level_after_s: Annotated[int, Field(ge=1, le=3600)] = 20
    city_general_after_s: Annotated[int, Field(ge=1, le=3600)] = 45
    province_after_s: Annotated[int, Field(ge=1, le=3600)] = 90

    @model_validator(mode="after")
    def _order(self) -> RelaxConfig:
        if not (self.lower_level_after_s < self.city_general_after_s < self.province_after_s):
            raise ValueError("needs lower_level_after_s < city_general_after_s < "
                             "province_after_s")
        return self


class RoutingSection(_Section):
    """Who goes first, and how far a waiting call is widened."""

    # A caller with an open case from the last N days is a repeat caller (0: never).
    repeat_window_days: Annotated[int, Field(ge=0, le=90)] = 7
    # How long the agent who handled the earlier case rings before the call queues.
    preferred_agent_ring_s: Annotated[int, Field(ge=2, le=60)] = 10
    # Queue priorities (Asterisk QUEUE_PRIO: higher is answered first). A call waiting through
    # an overflow step gains 1 per step, so tiers should be at least 3 apart.
    priority_handover: Annotated[int, Field(ge=0, le=1000)] = 30
    priority_green: Annotated[int, Field(ge=0, le=1000)] = 20  # elderly/disabled (绿色通道)
    priority_repeat: Annotated[int, Field(ge=0, le=1000)] = 10
    relax: RelaxConfig = RelaxConfig()
    # Per-skill thresholds (e.g. lang_en waits longer for an English speaker).
    relax_skills: dict[ID, RelaxConfig] = {}
    # Full reload of the in-memory caller look-ups (changes also arrive at once over Redis).
    refresh_s: Annotated[int, Field(ge=5, le=86400)] = 300

    def relax_for(self, skill: str) -> RelaxConfig:
        return self.relax_skills.get(skill, self.relax)


class TransfersSection(_Section):
    """Transfers to branch centers and emergency lines (see docs/transfers.md)."""

    # The number destinations see when the hotline (not the caller) is presented.
    hotline_number: DIGITS = "12345"
    # A branch center that rings longer than this counts as not answering.
    ring_timeout_s: Annotated[int, Field(ge=5, le=120)] = 30
    # An emergency line must answer within this (N); otherwise the agent gets the caller back.
    emergency_timeout_s: Annotated[int, Field(ge=3, le=120)] = 15
    # How often Asterisk checks each destination's trunk (SIP OPTIONS): an unreachable trunk
    # fails a transfer at once instead of ringing into the void.
    qualify_s: Annotated[int, Field(ge=1, le=300)] = 10
    # An agent's softphone that stops sending audio (crashed, network gone) is hung up after
    # this long, so a three-way call goes on without it; 0 never hangs up. Comfort noise
    # counts as audio; for desk phones that send nothing at all while the agent is silent,
    # set 0 and rely on the session timer below.
    agent_media_timeout_s: Annotated[int, Field(ge=0, le=300)] = 10
    # SIP phones' calls are refreshed by Asterisk every half of this (session timers, RFC
    # 4028): a phone that does not answer the refresh is gone, however silent its agent.
    # 0: no session timers. At least 90 (RFC 4028's minimum).
    agent_session_expires_s: Annotated[int, Field(ge=0, le=7200)] = 120

    @field_validator("agent_session_expires_s")
    @classmethod
    def _session_expires(cls, v: int) -> int:
        if 0 < v < 90:
            raise ValueError("must be 0 (off) or at least 90 seconds (RFC 4028)")
        return v


class DestinationConfig(_Section):
    """A line the hotline transfers callers to, over an outbound SIP trunk of its own."""

    kind: ClassVar[str] = ""
    id: ID
    number: DIGITS
    name: str
    # The case category a transfer there implies (e.g. "税务", "治安警情").
    category: str
    # The trunk's far end (the line's or the carrier's SBC): "host" or "host:port".
    address: str
    # Who the destination sees calling: the hotline, or the caller (so it can call back).
    present: Literal["hotline", "caller"] = "hotline"
    # Seconds it may ring; unset: [transfers] ring_timeout_s or emergency_timeout_s.
    ring_timeout_s: Annotated[int, Field(ge=3, le=120)] | None = None

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        host, sep, port = v.rpartition(":") if v.count(":") == 1 else (v, "", "")
        if not re.fullmatch(r"[A-Za-z0-9.-]{1,253}", host):
            raise ValueError('must be "host" or "host:port"')
        if sep and not (port.isdigit() and 1 <= int(port) <= 65535):
            raise ValueError(f"port {port!r} is not a port number")
        return v

    @property
    def endpoint(self) -> str:
        """Its PJSIP endpoint on every node."""
        return f"dest-{self.id}"


class BranchCenterConfig(DestinationConfig):
    """A branch center (分中心): a government hotline like 12366 (tax) or 95598 (power)."""

    kind: ClassVar[str] = "branch_center"


class EmergencyLineConfig(DestinationConfig):
    """An emergency line (110, 119, 120, 122): shown the caller's number by default."""

    kind: ClassVar[str] = "emergency_line"
    present: Literal["hotline", "caller"] = "caller"


class RecordingSection(_Section):
    """Call recordings (asr/): MixMonitor on the caller's channel from the agent's answer."""

    enabled: bool = True
    # Where recordings are kept, named by case (relative paths: under data_dir).
    dir: Path = Path("recordings")
    # Recordings older than this are deleted, and the case says so.
    retention_days: Annotated[int, Field(ge=1, le=3650)] = 180
    purge_interval_s: Annotated[int, Field(ge=10, le=86400)] = 3600


class AsrSection(_Section):
    """Offline transcription and live captions with Vosk (asr/)."""

    enabled: bool = True
    # A Vosk model folder (`hotline asr install-model FILE.zip` puts it here); relative paths
    # are under data_dir.
    model: Path = Path("models/vosk-model-small-cn-0.22")
    # Transcription processes (0: one per core).
    workers: Annotated[int, Field(ge=0, le=64)] = 0
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    # A job held longer than this by a worker that stopped renewing it is taken back.
    lease_s: Annotated[float, Field(ge=1, le=3600)] = 30.0
    # Live captions: both sides streamed to Vosk over AudioSocket while the call runs.
    live: bool = True
    live_bind_host: str = "127.0.0.1"
    live_port: Annotated[int, Field(ge=0, le=65535)] = 0  # 0: any free port
    # The address Asterisk connects to for AudioSocket.
    live_asterisk_reaches: str = "127.0.0.1"
    # At most this many live streams at once (two per call); more calls get no captions.
    live_max_streams: Annotated[int, Field(ge=0, le=1000)] = 24


class SurgeSection(_Section):
    """Surges across cities (多援一): detection, proposals, automatic moves (docs/surge.md)."""

    # The skills whose city queues are watched (one queue per city and skill).
    skills: list[ID] = ["general"]
    # Service level target: this share of callers answered within target_s seconds.
    target_sl: Annotated[float, Field(gt=0, lt=1)] = 0.8
    target_s: Annotated[int, Field(ge=1, le=600)] = 15
    # Figures (arrival rate, handle time, service level) are measured over this window.
    window_s: Annotated[int, Field(ge=10, le=7200)] = 300
    # Handle time assumed until enough calls have been observed.
    default_aht_s: Annotated[float, Field(gt=0, le=7200)] = 180.0
    min_samples: Annotated[int, Field(ge=1, le=1000)] = 5
    # A city never lends below this many present agents; per-city floors override it.
    default_floor: Annotated[int, Field(ge=0, le=1000)] = 1
    floors: dict[ID, Annotated[int, Field(ge=0, le=1000)]] = {}
    # Borrowed agents join the surging queue with this penalty: the city's own agents (penalty
    # 0..4 from their level) are offered calls first; 0 offers borrowed agents equally.
    borrow_penalty: Annotated[int, Field(ge=0, le=10)] = 4
    # While lent, does the agent still take home calls? "serve": yes (both queues offer calls,
    # whichever rings first); "pause": the agent is paused at home, so surge calls come first.
    lent_home: Literal["serve", "pause"] = "serve"
    # A surge starts when a queue needs more agents than it has (or waits past the target)
    # for enter_after_s, and ends after exit_after_s of calm (hysteresis: no flapping).
    enter_after_s: Annotated[float, Field(ge=0, le=3600)] = 20.0
    exit_after_s: Annotated[float, Field(ge=0, le=7200)] = 120.0
    # Automatic policy: the service applies proposals itself, within these limits.
    auto: bool = False
    max_borrowed_per_city: Annotated[int, Field(ge=0, le=1000)] = 5
    max_per_move: Annotated[int, Field(ge=1, le=100)] = 3
    interval_s: Annotated[float, Field(ge=0.2, le=600)] = 5.0
    proposal_ttl_s: Annotated[int, Field(ge=10, le=86400)] = 600
    lock_ttl_s: Annotated[int, Field(ge=1, le=600)] = 30
    # The staffing forecast (docs/agent-figures.md): calls expected per half-hour from the
    # same weekday of this many weeks; donors keep the agents their forecast needs.
    forecast_weeks: Annotated[int, Field(ge=1, le=52)] = 4

    def floor_of(self, city: str) -> int:
        return self.floors.get(city, self.default_floor)


class PrivacySection(_Section):
    """Personal data destroyed when due (common/retention.py, docs/security.md). The job runs
    every [recording] purge_interval_s with the recordings' retention."""

    # Transcripts (what was said) of cases older than this are deleted.
    transcript_retention_days: Annotated[int, Field(ge=1, le=3650)] = 180
    # The personal fields of ended cases older than this (number, name, what the agent wrote,
    # callback notes) are blanked; the anonymous figures stay. 0 keeps them.
    case_personal_retention_days: Annotated[int, Field(ge=0, le=36500)] = 1095
    # Asterisk's own call records (CEL: callers' numbers in clear, written by Asterisk) are
    # needed only until the service has read them (after an outage): deleted after this.
    cel_retention_days: Annotated[int, Field(ge=1, le=3650)] = 30


# Numbers a callback may dial (regular expressions over the whole number, after +86/0086 and
# spaces or dashes are dropped): Chinese mobiles, landlines with their area code, local
# 7-8 digit landlines. Short codes (110, 12345, 95xxx), premium and international numbers
# match none of them.
CALLBACK_PATTERNS = [r"1[3-9][0-9]{9}", r"0(?:10|2[0-9])[0-9]{8}", r"0[3-9][0-9]{2}[0-9]{7,8}",
                     r"[2-8][0-9]{6,7}"]


class CallbacksSection(_Section):
    """Which numbers a missed-call callback may dial (common/numbers.py): the
    caller ID is the caller's word, and a spoofed premium, international or emergency number
    must not make the hotline call it."""

    allowed_patterns: list[str] = CALLBACK_PATTERNS

    @field_validator("allowed_patterns")
    @classmethod
    def _patterns(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one pattern (or no callback could be made)")
        for p in v:
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(f"{p!r} is not a regular expression: {exc}") from exc
            if re.fullmatch(p, "110") or re.fullmatch(p, "12345"):
                raise ValueError(f"{p!r} lets a callback dial a short code (110, 12345)")
        return v


class DepartmentConfig(_Section):
    """A 承办单位 of the directory (cases/loop): seeded into the database at start, where
    admins edit it (a department left out of the file later stays, as it was)."""

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
    name: str
    level: Literal["province", "city", "district", "street"]
    city: ID | None = None
    parent: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")] | None = None
    unit: str = ""  # the functional unit, for reports across cities: "人社局", "城管局"
    webhook_url: str | None = None


class DepartmentDefaultConfig(_Section):
    """The department a 事项 goes to (in one city, or in every city without its own)."""

    matter: str
    department: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
    city: ID | None = None


APPEAL_TYPES = ("consultation", "help", "complaint", "report", "suggestion", "praise")


class CaseLoopSection(_Section):
    """The case loop after the call (cases/loop, docs/case-loop.md): classification,
    departments, time limits (in working time, China's holiday calendar) and 督办."""

    # The 事项分类 tree and 诉求类型 (JSON like cases/loop/matters.json); none: the default.
    taxonomy_file: Path | None = None
    # More departments as CSV (id,name,level,city,parent,unit,webhook_url), beside the list.
    departments_file: Path | None = None
    departments: list[DepartmentConfig] = []
    defaults: list[DepartmentDefaultConfig] = []
    # Time limits: signing for a dispatch (working hours), handling per 诉求类型 (working days).
    sign_hours: Annotated[float, Field(gt=0, le=72)] = 2
    limit_days: dict[str, Annotated[int, Field(ge=1, le=90)]] = {
        "consultation": 1, "help": 3, "complaint": 5, "report": 5, "suggestion": 10,
        "praise": 5}
    # 黄灯 when this share of the time limit is used; 红灯 when it is over.
    yellow_share: Annotated[float, Field(gt=0, lt=1)] = 0.8
    # Changes to the official calendar (chinese_calendar): days off and working days.
    extra_holidays: list[date] = []
    extra_workdays: list[date] = []
    # Years chinese_calendar does not know yet (a new year before the package is upgraded):
    # weekends rest there, plus extra_holidays and extra_workdays. Any other unknown year
    # stops the deadlines with an error naming it instead of guessing.
    calendar_years: list[Annotated[int, Field(ge=2000, le=2200)]] = []
    # Office hours, local time: working hours count only these ("HH:MM-HH:MM", in order).
    office_hours: list[str] = ["08:30-12:00", "13:30-17:30"]
    # How often the 红黄灯 sweep runs.
    sweep_interval_s: Annotated[int, Field(ge=5, le=3600)] = 60
    # Earlier cases (closed ones too) a new one is linked to as a repeat complaint.
    repeat_window_days: Annotated[int, Field(ge=1, le=730)] = 90

    @field_validator("limit_days")
    @classmethod
    def _limits(cls, v: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(v) - set(APPEAL_TYPES))
        if unknown:
            raise ValueError(f"unknown 诉求类型 {unknown}; one of {', '.join(APPEAL_TYPES)}")
        return {**{t: 5 for t in APPEAL_TYPES}, **v}

    @field_validator("office_hours")
    @classmethod
    def _office_hours(cls, v: list[str]) -> list[str]:
        return _periods(v)

    @model_validator(mode="after")
    def _days(self) -> CaseLoopSection:
        both = sorted(set(self.extra_holidays) & set(self.extra_workdays))
        if both:
            raise ValueError("extra_holidays and extra_workdays both list "
                             + ", ".join(d.isoformat() for d in both))
        return self

    def office_periods(self) -> list[tuple[time, time]]:
        return [_period(p) for p in self.office_hours]


def _period(text: str) -> tuple[time, time]:
    """"08:30-12:00" as two times of day."""
    m = re.fullmatch(r"\s*([0-2]\d):([0-5]\d)\s*-\s*([0-2]\d):([0-5]\d)\s*", text)
    if m is None or int(m[1]) > 23 or int(m[3]) > 23:
        raise ValueError(f"{text!r}: a period is HH:MM-HH:MM, like 08:30-12:00")
    return time(int(m[1]), int(m[2])), time(int(m[3]), int(m[4]))


def _periods(v: list[str]) -> list[str]:
    """Daily periods ("08:30-12:00"), each ending after it starts, in order, not overlapping
    (office hours, calling hours)."""
    if not v:
        raise ValueError("at least one period is needed")
    previous_end: time | None = None
    for period in v:
        start, end = _period(period)
        if end <= start:
            raise ValueError(f"{period!r} ends before it starts")
        if previous_end is not None and start < previous_end:
            raise ValueError(f"{period!r} overlaps or precedes the period before")
        previous_end = end
    return v


class WebhooksSection(_Section):
    """Signed webhooks to departments' own systems (agent_desk/webhooks, docs/webhooks.md):
    every change of a case dispatched to a department with a webhook_url is written to an
    outbox in the change's transaction and delivered by a worker, retried with backoff."""

    enabled: bool = True
    # The master secret (32 random bytes, hex or base64) each department's signing secret is
    # derived from (HKDF, one per department and generation). Needed as soon as a department
    # has a webhook_url.
    secret_env: str = "HOTLINE_WEBHOOK_SECRET"
    # One POST may take this long (connect, send, answer).
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    # Attempts before a delivery goes to the dead-letter list, and its greatest age.
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 12
    max_age_s: Annotated[int, Field(ge=1, le=30 * 86400)] = 2 * 86400
    # Exponential backoff between attempts: base * 2^(attempt-1), at most backoff_max_s,
    # with jitter (between half and all of it).
    backoff_base_s: Annotated[float, Field(gt=0, le=3600)] = 5.0
    backoff_max_s: Annotated[float, Field(gt=0, le=86400)] = 3600.0
    # How often the worker looks for due deliveries; how many it takes, and sends at once.
    interval_s: Annotated[float, Field(gt=0, le=600)] = 2.0
    batch: Annotated[int, Field(ge=1, le=1000)] = 16
    concurrency: Annotated[int, Field(ge=1, le=100)] = 8
    # A worker holds a batch this long; one killed mid-batch loses it to another after this.
    # Above timeout_s times the rounds a batch takes (batch / concurrency).
    lease_s: Annotated[float, Field(gt=0, le=3600)] = 60.0
    # After a secret is rotated, deliveries are signed with the previous one too for this long.
    rotation_grace_s: Annotated[int, Field(ge=0, le=30 * 86400)] = 86400
    # Webhooks go to public addresses only (no server-side request forgery into the
    # hotline's own network): loopback, private, link-local and reserved addresses are refused
    # unless in these networks (e.g. the 政务外网 range the departments are on).
    allow_networks: list[str] = []

    @field_validator("allow_networks")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        return _network_list(v)

    @model_validator(mode="after")
    def _times(self) -> WebhooksSection:
        rounds = -(-self.batch // self.concurrency)
        if self.lease_s <= self.timeout_s * rounds:
            raise ValueError(f"lease_s must be above timeout_s x {rounds} (batch / "
                             "concurrency rounds): a delivery in flight would be taken by "
                             "another worker")
        if self.backoff_max_s < self.backoff_base_s:
            raise ValueError("backoff_max_s must be at least backoff_base_s")
        return self


class IntakeSection(_Section):
    """Cases that arrive without a call (agent_desk/intake, docs/intake.md): the public web
    form (市长信箱) with its status page, and the channel API of the government's other
    channels (WeChat, mini-programs, partner systems; a per-channel API token each).

    The form is anonymous: what holds it back is counted in Redis per client address and per
    phone number (fixed windows starting at the first request)."""

    web_form: bool = True
    channel_api: bool = True
    # Submissions of the web form per client address (an IPv6 client: per /64) and per phone
    # number, in a window.
    submissions_per_address: Annotated[int, Field(ge=1, le=10_000)] = 5
    submissions_per_number: Annotated[int, Field(ge=1, le=1000)] = 3
    submission_window_s: Annotated[int, Field(ge=60, le=7 * 86400)] = 3600
    # Status queries per client address, and wrong answers (phone number or query code) per
    # case number, in a window: a query code cannot be guessed.
    queries_per_address: Annotated[int, Field(ge=1, le=10_000)] = 30
    query_failures_per_case: Annotated[int, Field(ge=1, le=100)] = 5
    query_window_s: Annotated[int, Field(ge=60, le=86400)] = 3600
    # Channel API requests per token and minute.
    channel_requests_per_minute: Annotated[int, Field(ge=1, le=100_000)] = 600
    # The version of the personal-data notice the citizen consents to (kept with the case).
    consent_version: Annotated[str, Field(min_length=1, max_length=32)] = "2026-01"


class FollowUpSection(_Section):
    """回访 calls (agent_desk/followup, docs/follow-up.md): the service calls the caller of a
    case waiting for 回访 (or one an operator picks) over the caller's city trunk, asks two
    questions by key and drives the case loop with the answers."""

    enabled: bool = True
    # When callers may be called, local time, every day ("HH:MM-HH:MM", in order).
    hours: list[str] = ["09:00-12:00", "14:00-20:00"]
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    # Time between two attempts on one case (no answer, busy, no keys).
    retry_after_s: Annotated[int, Field(ge=5, le=7 * 86400)] = 2 * 3600
    ring_s: Annotated[int, Field(ge=5, le=120)] = 30
    # Per question: the key window after its prompt (each question is asked twice at most).
    key_timeout_s: Annotated[float, Field(ge=1, le=20)] = 6.0
    # An attempt that never reported back (Asterisk or the service restarted meanwhile)
    # counts as not answered after this long.
    attempt_timeout_s: Annotated[int, Field(ge=30, le=3600)] = 600
    # How often the worker looks for cases to call and tasks due.
    poll_s: Annotated[float, Field(ge=0.2, le=600)] = 15.0
    # Calls at once (the worker's own limit; the trunk has its own).
    concurrent: Annotated[int, Field(ge=1, le=50)] = 2
    # How a caller is reached: {trunk} is the city's carrier trunk, {number} the checked
    # number (digits only; [callbacks] allowed_patterns decide which numbers may be dialled).
    dial: str = "PJSIP/trunk-{trunk}/sip:{number}@127.0.0.1:5070"
    # Cities without a carrier trunk of their own call out on this trunk (none: refused).
    default_trunk: ID | None = None
    # The per-call prompt naming the case (espeak-ng); a failure falls back to a general one.
    intro: str = "您好，这里是幺二三四五热线回访。您的工单号{number}，事项：{matter}。"
    resolved_prompt: str = "您反映的问题是否已经解决？已解决请按1，未解决请按2。"
    thanks: str = "感谢您的配合，再见。"

    @field_validator("hours")
    @classmethod
    def _hours(cls, v: list[str]) -> list[str]:
        return _periods(v)

    @field_validator("dial")
    @classmethod
    def _dial(cls, v: str) -> str:
        if v.count("{number}") != 1:
            raise ValueError("must hold {number} once (where the caller's number goes)")
        if any(c in v for c in ",&\n"):
            raise ValueError("must not hold ',' '&' or a line break (Dial options, channels)")
        return v

    def periods(self) -> list[tuple[time, time]]:
        return [_period(p) for p in self.hours]


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class ReportsSection(_Section):
    """Scheduled reports of the case loop (agent_desk/reports, docs/case-loop-reports.md): the
    day before's figures every day, the week before's once a week, as XLSX and CSV files by
    department and by city. A period's files are written once; writing them again gives the
    same files."""

    enabled: bool = True
    # Where the files go (relative paths: under data_dir): daily/ and weekly/ inside.
    dir: Path = Path("reports")
    # Local time (the service's time zone) at which the day before's report is written.
    daily_at: time = time(6, 0)
    # The day the week before's report (Monday to Sunday) is written, at daily_at.
    weekly_on: Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                       "sunday"] = "monday"
    # How often the worker looks for a report that is due and not yet written.
    check_interval_s: Annotated[int, Field(ge=10, le=3600)] = 300

    @field_validator("daily_at")
    @classmethod
    def _local(cls, v: time) -> time:
        if v.tzinfo is not None:
            raise ValueError("a local time without an offset (the service's time zone)")
        return v


class ChecklistItem(_Section):
    """One line of the 质检 scoring form: up to ``points`` points."""

    id: ID
    zh: Annotated[str, Field(min_length=1, max_length=64)]
    en: Annotated[str, Field(min_length=1, max_length=64)]
    points: Annotated[int, Field(ge=1, le=100)]


class QualitySection(_Section):
    """Quality inspection (质检, docs/agent-figures.md): the daily sample per agent and the
    scoring form's checklist."""

    # Calls drawn at random per agent and day, beside those the rules pick.
    random_per_agent: Annotated[int, Field(ge=0, le=50)] = 2
    # Rules: calls this long, unsatisfied ratings, complaints, transfers to emergency lines;
    # at most max_by_rules of them per agent and day (longest first).
    long_call_s: Annotated[int, Field(ge=30, le=7200)] = 600
    max_by_rules: Annotated[int, Field(ge=0, le=50)] = 5
    checklist: Annotated[list[ChecklistItem], Field(min_length=1)] = [
        ChecklistItem(id="greeting", zh="规范开头语", en="Standard greeting", points=10),
        ChecklistItem(id="listening", zh="耐心倾听、准确记录诉求",
                      en="Listened and recorded the request", points=30),
        ChecklistItem(id="policy", zh="政策解答准确", en="Correct answer on policy", points=30),
        ChecklistItem(id="attitude", zh="服务态度", en="Courtesy", points=20),
        ChecklistItem(id="closing", zh="规范结束语", en="Standard closing", points=10),
    ]

    @model_validator(mode="after")
    def _unique_items(self) -> QualitySection:
        ids = [i.id for i in self.checklist]
        if len(set(ids)) != len(ids):
            raise ValueError("checklist: item ids must be unique")
        return self


class InsightSection(_Section):
    """Hot-topic alerts and suggested classification (agent_desk/insight,
    docs/insight.md)."""

    enabled: bool = True
    # How often new cases are counted and the counts tested.
    interval_s: Annotated[int, Field(ge=5, le=3600)] = 60
    # The sliding window counted, and how many earlier same weekdays make its baseline.
    window_minutes: Annotated[int, Field(ge=10, le=1440)] = 60
    baseline_weeks: Annotated[int, Field(ge=1, le=12)] = 4
    # An alert: a count this improbable against its baseline (the exact test of Poisson
    # counts, agent_desk/insight/detector.py) and at least min_count cases. A burst lasts
    # while its count stays below p_clear, and cooldown_minutes after that; then it has
    # subsided and a new burst is a new alert.
    p_alert: Annotated[float, Field(gt=0, lt=0.5)] = 1e-4
    p_clear: Annotated[float, Field(gt=0, le=0.5)] = 0.05
    min_count: Annotated[int, Field(ge=2, le=100_000)] = 5
    # The expected count assumed where the baseline is lower (a series never seen before).
    min_expected: Annotated[float, Field(gt=0, le=1000)] = 1.0
    cooldown_minutes: Annotated[int, Field(ge=0, le=1440)] = 30
    # A hot series that is this share of an open alert's cases (or not hot without them)
    # joins that alert: one alert per burst.
    overlap_share: Annotated[float, Field(gt=0, le=1)] = 0.5
    # Counts per word of the form and the transcript (keyed hashes, never the text).
    keywords: bool = True
    max_terms_per_case: Annotated[int, Field(ge=1, le=500)] = 60
    # Cases indexed per pass (a first start indexes the baseline's weeks in steps).
    index_batch: Annotated[int, Field(ge=10, le=100_000)] = 2000
    # The classifier: trained this often on the latest confirmed cases, a share held back to
    # measure it; it replaces the keyword rules once it has min_confirmed cases and beats
    # them on the held-back ones.
    train_interval_s: Annotated[int, Field(ge=60, le=7 * 86400)] = 3600
    train_max_cases: Annotated[int, Field(ge=50, le=1_000_000)] = 20_000
    min_confirmed: Annotated[int, Field(ge=10, le=1_000_000)] = 200
    held_back_share: Annotated[float, Field(gt=0, lt=0.9)] = 0.2
    # p_alert is for a whole pass: divided by the number of series tested (Bonferroni), so a
    # province's thousand series a window do not raise alerts by chance.
    per_pass: bool = True
    # Departments told of a new alert by webhook (event hot_topic.opened, through the
    # outbox; a department without a webhook URL is skipped), and whether the 事项's default
    # department in the alert's city is told too.
    notify_departments: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")]] = []
    notify_matter_department: bool = True

    @model_validator(mode="after")
    def _thresholds(self) -> InsightSection:
        if self.p_clear < self.p_alert:
            raise ValueError("p_clear must be at least p_alert (a burst ends after it starts)")
        return self


class WebSection(_Section):
    """The agent console and supervisor wallboard (agent_desk/web/, docs/console.md)."""

    host: str = "127.0.0.1"
    port: PORT = 8080
    # Environment variable holding the session-signing secret (32 random bytes, hex or base64).
    session_secret_env: str = "HOTLINE_SESSION_SECRET"
    session_ttl_s: Annotated[int, Field(ge=60, le=86400)] = 8 * 3600
    # Set on the cookie when served over HTTPS (behind the proxy); off for the lab.
    secure_cookies: bool = False
    max_body_bytes: Annotated[int, Field(ge=1024, le=10_000_000)] = 64 * 1024
    # Failed logins allowed per username in a window, and per client address (higher: a
    # whole call center may sign in from one NAT address).
    login_attempts: Annotated[int, Field(ge=1, le=100)] = 5
    login_attempts_per_address: Annotated[int, Field(ge=1, le=10000)] = 30
    login_window_s: Annotated[int, Field(ge=10, le=3600)] = 300
    # What the web port may take from the event loop it shares with FastAGI routing
    # (agent_desk/web/limits.py; 0 = no limit): requests per second per client address without
    # a session (login page, its files, /api/openapi.json; enough for a centre signing in
    # behind one NAT address), and requests handled at once (beyond: 503).
    anonymous_requests_per_s: Annotated[int, Field(ge=0, le=100_000)] = 50
    anonymous_burst: Annotated[int, Field(ge=1, le=100_000)] = 200
    max_requests_in_flight: Annotated[int, Field(ge=0, le=100_000)] = 512
    # Roles that see callers' numbers in clear (everyone else sees 138****5678).
    see_numbers: list[Literal["agent", "supervisor", "admin"]] = ["supervisor", "admin"]
    # Missed-call callbacks: attempts per task, and how the caller is dialled from the
    # agent's softphone ({number} is the caller's number).
    callback_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    callback_dial: str = "PJSIP/trunk-carrier/sip:{number}@127.0.0.1:5070"
    callback_ring_s: Annotated[int, Field(ge=5, le=120)] = 30
    # After each answered call the agent is in wrap-up (事后处理, paused with reason
    # after_call_work) this long, then ready again; 0 = no timed wrap-up from the console
    # (Asterisk's own [queueing] wrapup_s still applies).
    wrapup_after_call_s: Annotated[int, Field(ge=0, le=600)] = 0
    # Answered within this many seconds counts toward the service level.
    service_level_s: Annotated[int, Field(ge=1, le=300)] = 15
    # Where the transcript helper's recordings are; the console serves files only from here.
    recordings_dir: Path | None = None
    # Reverse proxies (CIDRs) whose X-Forwarded-For names the client: the address the login
    # limit, /metrics and the audit log see. Any other peer's header is ignored.
    trusted_proxies: list[str] = []
    # A session unused (no API request) this long is refused; 0 = only session_ttl_s.
    idle_timeout_s: Annotated[int, Field(ge=0, le=86400)] = 30 * 60
    # Open WebSockets per user and web process; a further one is refused (429).
    max_sockets_per_user: Annotated[int, Field(ge=1, le=100)] = 5
    # Requests a department's system may make per minute with one API token
    # (agent_desk/departments; over it: 429 with Retry-After); 0 = no limit.
    token_requests_per_minute: Annotated[int, Field(ge=0, le=100_000)] = 120

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, v: list[str]) -> list[str]:
        return _network_list(v)


class Config(_Section):
    service: ServiceSection = ServiceSection()
    database: DatabaseSection = DatabaseSection()
    redis: RedisSection = RedisSection()
    security: SecuritySection = SecuritySection()
    sip_tls: SipTlsSection = SipTlsSection()
    fastagi: FastAgiSection = FastAgiSection()
    queueing: QueueingSection = QueueingSection()
    menu: MenuConfig = MenuConfig()
    rating: RatingSection = RatingSection()
    announce: AnnounceSection = AnnounceSection()
    nobody: NobodySection = NobodySection()
    keep_place: KeepPlaceSection = KeepPlaceSection()
    routing: RoutingSection = RoutingSection()
    province: str = "province"
    skills: dict[ID, str]
    nodes: list[NodeConfig]
    cities: list[CityConfig]
    trunks: list[TrunkConfig]
    numbers: list[NumberConfig]
    agents: list[AgentConfig] = []
    supervisors: list[SupervisorConfig] = []
    supervision: SupervisionSection = SupervisionSection()
    transfers: TransfersSection = TransfersSection()
    branch_centers: list[BranchCenterConfig] = []
    emergency_lines: list[EmergencyLineConfig] = []
    recording: RecordingSection = RecordingSection()
    asr: AsrSection = AsrSection()
    surge: SurgeSection = SurgeSection()
    privacy: PrivacySection = PrivacySection()
    callbacks: CallbacksSection = CallbacksSection()
    case_loop: CaseLoopSection = CaseLoopSection()
    webhooks: WebhooksSection = WebhooksSection()
    intake: IntakeSection = IntakeSection()
    follow_up: FollowUpSection = FollowUpSection()
    reports: ReportsSection = ReportsSection()
    insight: InsightSection = InsightSection()
    quality: QualitySection = QualitySection()
    web: WebSection = WebSection()
    webrtc: WebrtcSection = WebrtcSection()
    sign_language: SignLanguageSection = SignLanguageSection()

    # Set by load_config: the file's own folder, so relative paths mean what the operator sees.
    base_dir: Path = Path(".")

    @model_validator(mode="after")
    def _references(self) -> Config:
        problems: list[str] = []

        def unique(kind: str, values: list[str]) -> None:
            seen: set[str] = set()
            for i, v in enumerate(values):
                if v in seen:
                    problems.append(f"{kind}[{i}]: duplicate {v!r}")
                seen.add(v)

        unique("nodes", [n.id for n in self.nodes])
        unique("cities", [c.id for c in self.cities])
        unique("trunks", [t.id for t in self.trunks])
        unique("numbers", [n.number for n in self.numbers])
        unique("agents", [a.id for a in self.agents])
        unique("supervisors", [p.id for p in self.supervisors])
        unique("supervisors (user)", [p.user for p in self.supervisors])
        agent_ids = {a.id for a in self.agents}
        node_ids = {n.id for n in self.nodes}
        city_ids = {c.id for c in self.cities}
        if not self.nodes:
            problems.append("nodes: at least one Asterisk node is needed")
        if PROVINCE_POOL in city_ids:
            problems.append(f"cities: {PROVINCE_POOL!r} is reserved for the province pool")
        for i, c in enumerate(self.cities):
            if c.node not in node_ids:
                problems.append(f"cities[{i}].node: unknown node {c.node!r}")
        for i, t in enumerate(self.trunks):
            if t.node not in node_ids:
                problems.append(f"trunks[{i}].node: unknown node {t.node!r}")
            if t.city is not None and t.city not in city_ids:
                problems.append(f"trunks[{i}].city: unknown city {t.city!r}")
        trunk_ids = {t.id for t in self.trunks}
        if self.follow_up.default_trunk and self.follow_up.default_trunk not in trunk_ids:
            problems.append(f"follow_up.default_trunk: unknown trunk "
                            f"{self.follow_up.default_trunk!r}")
        for i, n in enumerate(self.numbers):
            if n.skill not in self.skills:
                problems.append(f"numbers[{i}].skill: unknown skill {n.skill!r}")
            if n.city is not None and n.city not in city_ids:
                problems.append(f"numbers[{i}].city: unknown city {n.city!r}")
        sl = self.sign_language
        if sl.enabled:
            if sl.skill not in self.skills:
                problems.append(f"sign_language.skill: unknown skill {sl.skill!r}")
            if not any(n.number == sl.number and n.skill == sl.skill for n in self.numbers):
                problems.append(f"sign_language.number: no [[numbers]] entry {sl.number!r} with "
                                f"skill {sl.skill!r}")
            if sl.node is not None and sl.node not in node_ids:
                problems.append(f"sign_language.node: unknown node {sl.node!r}")
        dept_ids = {d.id for d in self.case_loop.departments}
        unique("case_loop.departments", [d.id for d in self.case_loop.departments])
        for i, d in enumerate(self.case_loop.departments):
            if d.city is not None and d.city not in city_ids:
                problems.append(f"case_loop.departments[{i}].city: unknown city {d.city!r}")
            if d.parent is not None and d.parent not in dept_ids:
                problems.append(f"case_loop.departments[{i}].parent: unknown {d.parent!r}")
        for i, dd in enumerate(self.case_loop.defaults):
            if dd.city is not None and dd.city not in city_ids:
                problems.append(f"case_loop.defaults[{i}].city: unknown city {dd.city!r}")
            if dd.department not in dept_ids and self.case_loop.departments_file is None:
                problems.append(
                    f"case_loop.defaults[{i}].department: unknown {dd.department!r}")
        if self.keep_place.enabled and self.keep_place.key in self.menu.keys:
            problems.append(f"keep_place.key: {self.keep_place.key!r} is a menu key")
        for key, skill in self.menu.keys.items():
            if skill not in self.skills:
                problems.append(f"menu.keys.{key}: unknown skill {skill!r}")
        for skill in self.routing.relax_skills:
            if skill not in self.skills:
                problems.append(f"routing.relax_skills.{skill}: unknown skill")
        if self.queueing.fallback_skill not in self.skills:
            problems.append(
                f"queueing.fallback_skill: unknown skill {self.queueing.fallback_skill!r}"
            )
        for i, a in enumerate(self.agents):
            if a.city not in city_ids:
                problems.append(f"agents[{i}].city: unknown city {a.city!r}")
            for skill in a.skills:
                if skill not in self.skills:
                    problems.append(f"agents[{i}].skills.{skill}: unknown skill")
            for j, pool in enumerate(a.pools):
                if pool not in city_ids:
                    problems.append(f"agents[{i}].pools[{j}]: unknown city {pool!r}")
        for i, sup in enumerate(self.supervisors):
            if sup.city not in city_ids:
                problems.append(f"supervisors[{i}].city: unknown city {sup.city!r}")
            if sup.id in agent_ids:
                problems.append(f"supervisors[{i}].id: {sup.id!r} is an agent's extension")
        ports: dict[tuple[str, int], str] = {}
        for i, node in enumerate(self.nodes):
            for name, port in (("sip_port", node.sip_port), ("ami_port", node.ami_port),
                               ("sip_tls_port", node.sip_tls_port)):
                if port is None:
                    continue
                port_key = (name[:3], port)
                if port_key in ports:
                    problems.append(f"nodes[{i}].{name}: {port} already used by {ports[port_key]}")
                ports[port_key] = f"nodes[{i}].{name}"
        problems.extend(_destination_problems(self))
        for city in self.surge.floors:
            if city not in city_ids:
                problems.append(f"surge.floors.{city}: unknown city")
        for i, skill in enumerate(self.surge.skills):
            if skill not in self.skills:
                problems.append(f"surge.skills[{i}]: unknown skill {skill!r}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # -- derived views -------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        d = self.service.data_dir
        return d if d.is_absolute() else (self.base_dir / d).resolve()

    def data_path(self, p: Path) -> Path:
        """A configured path: absolute as given, relative ones under data_dir."""
        return p if p.is_absolute() else (self.data_dir / p).resolve()

    @property
    def database_url(self) -> str:
        return expand_env(self.database.url.replace("{data_dir}", str(self.data_dir)),
                          "database.url")

    @property
    def redis_url(self) -> str:
        return expand_env(self.redis.url, "redis.url")

    def sip_tls_on(self, node_id: str) -> bool:
        """Whether the node listens for SIP over TLS (some of its endpoints need it)."""
        t = self.sip_tls
        return t.agents or t.carriers or (t.internode and any(
            n.id != node_id for n in self.nodes))

    def webrtc_on(self, node_id: str) -> bool:
        """Whether the node listens for browsers' phones (one of its agents has one, or it
        takes the sign-language page's video calls)."""
        return (any(a.phone == "browser" for a in self.agents_of(node_id))
                or self.sign_language_node() == node_id)

    def sign_language_node(self) -> str | None:
        """The node the sign-language page's calls go to (None: the page is off)."""
        sl = self.sign_language
        return (sl.node or self.nodes[0].id) if sl.enabled and self.nodes else None

    def webrtc_url(self, node_id: str, console_host: str) -> str:
        """Where a browser's phone reaches the node's SIP over secure WebSocket: the
        configured address, else the host the browser reached the console at (``host`` or
        ``host:port``), on the node's wss_port."""
        url = self.webrtc.urls.get(node_id)
        if url:
            return url
        host = console_host.rsplit(":", 1)[0] if not console_host.endswith("]") else \
            console_host
        return f"wss://{host or '127.0.0.1'}:{self.node(node_id).webrtc_port}/ws"

    def node(self, node_id: str) -> NodeConfig:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def city(self, city_id: str) -> CityConfig:
        for c in self.cities:
            if c.id == city_id:
                return c
        raise KeyError(city_id)

    def agent(self, agent_id: str) -> AgentConfig:
        for a in self.agents:
            if a.id == agent_id:
                return a
        raise KeyError(agent_id)

    @property
    def destinations(self) -> list[DestinationConfig]:
        """Branch centers and emergency lines: where agents can transfer callers."""
        return [*self.branch_centers, *self.emergency_lines]

    def destination(self, dest_id: str) -> DestinationConfig:
        for d in self.destinations:
            if d.id == dest_id:
                return d
        raise KeyError(dest_id)

    def ring_timeout_of(self, dest: DestinationConfig) -> int:
        if dest.ring_timeout_s is not None:
            return dest.ring_timeout_s
        if dest.kind == EmergencyLineConfig.kind:
            return self.transfers.emergency_timeout_s
        return self.transfers.ring_timeout_s

    def trunks_of(self, node_id: str) -> list[TrunkConfig]:
        return [t for t in self.trunks if t.node == node_id]

    def agents_of(self, node_id: str) -> list[AgentConfig]:
        cities = {c.id for c in self.cities if c.node == node_id}
        return [a for a in self.agents if a.city in cities]

    def supervisors_of(self, node_id: str) -> list[SupervisorConfig]:
        cities = {c.id for c in self.cities if c.node == node_id}
        return [p for p in self.supervisors if p.city in cities]

    def supervisor_of_user(self, user: str) -> SupervisorConfig | None:
        """The desk phone of a console user, if the configuration gives one."""
        return next((p for p in self.supervisors if p.user == user), None)

    def secret(self, env_name: str, *, what: str, strong: bool = False) -> str:
        value = os.environ.get(env_name, "")
        if len(value) < 12:
            raise ConfigError(
                f"{what}: environment variable {env_name} must hold a secret of at least 12 "
                f"characters ({'unset' if not value else 'too short'})"
            )
        if strong and (why := secret_weakness(value)):
            raise ConfigError(f"{what}: the secret in {env_name} is too weak: {why} "
                              f"(make one with: python3 -c 'import secrets; "
                              f"print(secrets.token_urlsafe(32))')")
        return value

    @property
    def ami_secret(self) -> str:
        return self.secret(self.security.ami_secret_env, what="security.ami_secret_env",
                           strong=True)

    @property
    def sip_secret(self) -> str:
        # Every agent's and inter-node trunk's SIP password is derived from it.
        return self.secret(self.security.sip_secret_env, what="security.sip_secret_env",
                           strong=True)

    @property
    def previous_data_keys(self) -> list[str]:
        return os.environ.get(self.security.data_key_previous_env, "").split()

    def random_key(self, env_name: str, *, what: str) -> str:
        """A key that must be 32 random bytes (the data key, the session secret)."""
        value = os.environ.get(env_name, "")
        if why := random_key_weakness(value):
            raise ConfigError(f"{what}: the key in environment variable {env_name} is not "
                              f"usable: {why}. {MAKE_RANDOM_KEY}")
        return value

    @property
    def data_key(self) -> str:
        return self.random_key(self.security.data_key_env, what="security.data_key_env")

    @property
    def session_secret(self) -> str:
        return self.random_key(self.web.session_secret_env, what="web.session_secret_env")

    @property
    def webhook_secret(self) -> str:
        return self.random_key(self.webhooks.secret_env, what="webhooks.secret_env")


def _destination_problems(cfg: Config) -> list[str]:
    problems: list[str] = []
    seen_ids: dict[str, str] = {}
    seen_numbers: dict[str, str] = {}
    for section, items in (("branch_centers", cfg.branch_centers),
                           ("emergency_lines", cfg.emergency_lines)):
        for i, d in enumerate(items):
            where = f"{section}[{i}]"
            if d.id in seen_ids:
                problems.append(f"{where}.id: {d.id!r} already used by {seen_ids[d.id]}")
            seen_ids.setdefault(d.id, where)
            if d.number in seen_numbers:
                problems.append(f"{where}.number: {d.number} already used by "
                                f"{seen_numbers[d.number]}")
            seen_numbers.setdefault(d.number, where)
    return problems


WEAK_WORDS = ("password", "passwd", "secret", "changeme", "asterisk", "hotline", "12345",
              "admin", "qwerty", "letmein")


def secret_weakness(value: str) -> str | None:
    """Why a secret that guards SIP or AMI is too weak to use (None: strong enough).

    At least 16 characters, 10 of them different, and not mostly a well-known word or a run:
    what a random generator gives at once and a person's choice rarely does."""
    if len(value) < 16:
        return f"{len(value)} characters, at least 16 needed"
    if len(set(value)) < 10:
        return f"only {len(set(value))} different characters, at least 10 needed"
    low = value.lower()
    rest = low
    for w in WEAK_WORDS:
        rest = rest.replace(w, "")
    if len(rest) < 12:
        return "mostly made of a well-known word (password, secret, asterisk, 12345...)"
    runs = sum(1 for a, b in itertools.pairwise(low) if ord(b) - ord(a) in (0, 1))
    if runs > len(low) // 2:
        return "mostly repeated or consecutive characters"
    return None


RANDOM_KEY_BYTES = 32
MAKE_RANDOM_KEY = ("Make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))' "
                   "(32 random bytes)")
_HEX = re.compile(r"[0-9a-fA-F]+")
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")


def random_key_weakness(value: str) -> str | None:
    """Why a value is not a usable 32-byte random key (None: it is one).

    The data key and the session secret guard every personal field and every session: a word
    list must not find them (``hotline12345`` was found from a cookie). Accepted: 32 or more
    bytes written as hex (64+ characters) or base64 / URL-safe base64 (43+ characters), that
    look random: no word from a list, no repeated pattern, enough different characters."""
    if not value:
        return "unset"
    value = value.strip()
    if _HEX.fullmatch(value):
        nbytes, alphabet, least = len(value) // 2, "hex", 10
    elif _BASE64.fullmatch(value):
        nbytes, alphabet, least = len(value.rstrip("=")) * 3 // 4, "base64", 16
    else:
        return "not hex or base64 (a random key written as text has no other characters)"
    if nbytes < RANDOM_KEY_BYTES:
        return f"{alphabet} of {nbytes} bytes, at least {RANDOM_KEY_BYTES} needed"
    rest = value.lower()
    for w in WEAK_WORDS:
        rest = rest.replace(w, "")
    if len(rest) < len(value) * 4 // 5:  # a random key may hold one by chance, not many
        return "made of well-known words (password, secret, hotline, 12345...)"
    if len(set(value)) < least:
        return f"only {len(set(value))} different characters: not random"
    # A pattern that repeats (abcabc..., a word typed twice) is not random either.
    for period in range(1, len(value) // 2 + 1):
        same = sum(a == b for a, b in zip(value, value[period:], strict=False))
        if same * 2 > len(value) - period:
            return "a repeated pattern: not random"
    if (why := secret_weakness(value)) is not None:
        return why
    return None


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(value: str, key: str) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in os.environ:
            raise ConfigError(f"{key}: refers to ${{{name}}}, which is not set in the environment")
        return os.environ[name]

    return _ENV_REF.sub(sub, value)


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def format_validation_error(source: str, exc: ValidationError) -> str:
    lines = [f"{source}: {exc.error_count()} problem(s) in the configuration:"]
    for err in exc.errors():
        loc = _location(tuple(p for p in err["loc"] if p not in ("function-after",)))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (misspelt, or in the wrong section?)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        got = err.get("input")
        detail = "" if err["type"] in ("missing", "model_type") or isinstance(got, dict) else (
            f" (got {got!r})"
        )
        lines.append(f"  {loc}: {msg}{detail}")
    return "\n".join(lines)


def parse_config(text: str, *, source: str = "<config>", base_dir: Path | None = None) -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    raw.pop("base_dir", None)
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from None
    return cfg.model_copy(update={"base_dir": base_dir or Path.cwd()})


def load_config(path: str | Path) -> Config:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: configuration file not found") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text") from None
    return parse_config(text, source=str(p), base_dir=p.resolve().parent)
