"""A complete hotline on this machine, on free ports: a config, a rendered and running Asterisk,
the service, and pjsua2 parties. The demo, the tests and the benchmarks all use it, so what the
tests prove is what the demo shows."""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import socket
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent_desk.softphone.credentials import issue_credentials
from common.config import Config, NodeConfig, parse_config, random_key_weakness, secret_weakness
from common.privacy import PersonalData
from common.secrets import sip_password
from hotline.service import HotlineService
from telephony.asterisk.instance import AsteriskInstance, instance_dir, reap_orphans
from telephony.asterisk.runtime import AsteriskRuntime, ensure_runtime

if TYPE_CHECKING:  # pjsua2 loads only when a lab starts its phones
    from agent_desk.softphone.phones import Phone, PhoneCall, SipPhones

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_CONFIG = REPO / "hotline.example.toml"


# Ports handed out by this process: never twice (a port closed by one test can still be in
# use, or about to be, by the next one's server).
_HANDED_OUT: set[int] = set()
# Lab servers' ports come from below the kernel's ephemeral range: a port from bind(0) is an
# ephemeral one, which any client socket (Redis, PostgreSQL, AMI, SIP) may take as its source
# port between our check and the server's bind. Above the labs' RTP ranges (20000-29199).
_LAB_PORTS = (30000, 32700)


def _ephemeral_low() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text(encoding="ascii")
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int, kinds: tuple[int, ...]) -> bool:
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def lane() -> tuple[int, int]:
    """This process's lane among several running labs at once (``HOTLINE_LAB_LANE=k/n``,
    set for each test worker): lanes draw ports and RTP ranges from separate slices, so two
    processes never hand out the same one. One lane of one by default."""
    text = os.environ.get("HOTLINE_LAB_LANE", "")
    k, _, n = text.partition("/")
    try:
        index, count = int(k), int(n)
    except ValueError:
        return 0, 1
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"HOTLINE_LAB_LANE={text!r}: expected k/n with 0 <= k < n")
    return index, count


def _slice(low: int, high: int, step: int = 1) -> tuple[int, int]:
    """This lane's part of [low, high), on multiples of ``step`` from ``low``."""
    index, count = lane()
    width = (high - low) // step // count * step
    return low + index * width, low + (index + 1) * width


def _pick_port(kinds: tuple[int, ...]) -> int:
    low, high = _slice(_LAB_PORTS[0], min(_LAB_PORTS[1], _ephemeral_low() - 1))
    for _ in range(1000):
        port = random.randrange(low, high)
        if port not in _HANDED_OUT and _bindable(port, kinds):
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError(f"no free port in {low}-{high}")


_RTP_BASES: set[int] = set()


def _rtp_base(nodes: int) -> int:
    """The start of ``nodes`` RTP ranges (100 ports each) that no other lab of this process
    uses: two labs' Asterisks running at once (the session's and a test's own) must not
    share media ports."""
    span = -(-nodes // 2) * 200
    low, high = _slice(20000, 29200, 200)
    free = [b for b in range(low, high, 200)
            if b + span <= high and not any(b <= u < b + span or u <= b < u + 200
                                            for u in _RTP_BASES)]
    base = random.choice(free) if free else random.randrange(low, high - span + 1, 200)
    _RTP_BASES.update(range(base, base + span, 200))
    return base


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free now on 127.0.0.1, outside the ephemeral range, and not handed out before
    by this process."""
    return _pick_port((kind,))


def free_port_pair() -> int:
    """A TCP port free now with the next one (Asterisk's WSS listener and its loopback
    plain HTTP one)."""
    for _ in range(1000):
        port = _pick_port((socket.SOCK_STREAM,))
        if port + 1 not in _HANDED_OUT and _bindable(port + 1, (socket.SOCK_STREAM,)):
            _HANDED_OUT.add(port + 1)
            return port
    raise RuntimeError("no two free ports in a row")


def free_sip_port() -> int:
    """A port free for both UDP (SIP) and TCP."""
    return _pick_port((socket.SOCK_DGRAM, socket.SOCK_STREAM))


def ensure_secrets() -> None:
    """Secrets for a lab run: the environment's if strong enough for the service, otherwise
    fresh random ones (32 random bytes each, as the service requires of its keys)."""
    for name in ("HOTLINE_AMI_SECRET", "HOTLINE_SIP_SECRET"):
        if secret_weakness(os.environ.get(name, "")):
            os.environ[name] = secrets.token_urlsafe(32)
    for name in ("HOTLINE_DATA_KEY", "HOTLINE_SESSION_SECRET", "HOTLINE_WEBHOOK_SECRET"):
        if random_key_weakness(os.environ.get(name, "")):
            os.environ[name] = secrets.token_urlsafe(32)


def lab_config(workdir: Path, **kwargs: Any) -> Config:
    """The example configuration moved to free ports, a private data dir and Redis prefix."""
    return parse_config(lab_config_toml(workdir, **kwargs), source="lab config",
                        base_dir=workdir)


def lab_config_toml(workdir: Path, *, base: Path = EXAMPLE_CONFIG,
                    database_url: str | None = None, redis_prefix: str | None = None,
                    nodes: int | None = None, overrides: dict[str, Any] | None = None) -> str:
    raw = tomllib.loads(base.read_text(encoding="utf-8"))
    raw.setdefault("service", {})["data_dir"] = str(workdir)
    raw["service"]["log_format"] = raw["service"].get("log_format", "text")
    raw.setdefault("fastagi", {})["port"] = free_port()
    raw.setdefault("web", {})["port"] = free_port()
    if database_url:
        raw.setdefault("database", {})["url"] = database_url
    raw.setdefault("redis", {})["prefix"] = redis_prefix or f"hotline-lab-{secrets.token_hex(4)}"
    raw["nodes"] = raw["nodes"][: nodes or len(raw["nodes"])]
    # Destinations' trunks point at this machine, where tests and the demo run their parties.
    for section in ("branch_centers", "emergency_lines"):
        for d in raw.get(section, []):
            d["address"] = f"127.0.0.1:{free_sip_port()}"
    for key, value in (overrides or {}).items():
        section, _, name = key.partition(".")
        if name:
            raw.setdefault(section, {})[name] = value
        else:
            raw[section] = value
    # Every node (the example's, or several given in overrides: one per city for surge tests)
    # on free ports of this machine; all started from the same cached runtime.
    rtp = _rtp_base(len(raw["nodes"]))
    raw["nodes"] = [dict(n) for n in raw["nodes"]]
    for i, n in enumerate(raw["nodes"]):
        n.update(sip_host="127.0.0.1", sip_port=free_sip_port(), sip_tls_port=free_port(),
                 wss_port=free_port_pair(),
                 ami_port=free_port(), rtp_start=rtp + i * 100, rtp_end=rtp + i * 100 + 98)
    return to_toml(raw)


def to_toml(data: dict[str, Any]) -> str:
    """Write a configuration dict as TOML: the inverse of ``tomllib.loads`` for what our
    configs hold, so a test, benchmark or drill can load the example, change a few keys and
    write it back (Python has no TOML writer in the standard library).

    Top-level scalars and arrays first, then each table (``[name]``, its values scalars,
    arrays or inline maps) and each array of tables (``[[name]]``). Nested tables deeper than
    one level are not supported: a dict inside a table is written as an inline map. Raises
    TypeError for a value it does not write (None, dates)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f'"{k}" = {value(x)}' for k, x in v.items()) + " }"
        raise TypeError(type(v))

    lines: list[str] = []
    for k, v in data.items():
        if not isinstance(v, (dict, list)) or (isinstance(v, list) and not (
                v and isinstance(v[0], dict))):
            lines.append(f"{k} = {value(v)}")
    for k, v in data.items():
        if isinstance(v, dict):
            lines.append(f"\n[{k}]")
            lines.extend(f"{kk} = {value(vv)}" for kk, vv in v.items())
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            for item in v:
                lines.append(f"\n[[{k}]]")
                lines.extend(f"{kk} = {value(vv)}" for kk, vv in item.items())
    return "\n".join(lines) + "\n"


async def aor_status(inst: AsteriskInstance, aor: str) -> tuple[str, str]:
    """What a node's qualify says of an AOR: "Reachable", "Unreachable" or "" (not yet),
    with the CLI's text."""
    out = await asyncio.to_thread(inst.cli, f"pjsip show aor {aor}")
    if "Unavail" in out:
        return "Unreachable", out
    return ("Reachable" if "Avail" in out else ""), out


class Lab:
    def __init__(self, cfg: Config, runtime: AsteriskRuntime | None = None):
        ensure_secrets()
        self.cfg = cfg
        self.runtime = runtime or ensure_runtime()
        self.instances = {n.id: AsteriskInstance(self.runtime, instance_dir(cfg, n), n)
                          for n in cfg.nodes}
        self.service: HotlineService | None = None
        self.sip: SipPhones | None = None

    @property
    def node(self) -> NodeConfig:
        return self.cfg.nodes[0]

    @property
    def instance(self) -> AsteriskInstance:
        return self.instances[self.node.id]

    def sip_server(self, node_id: str | None = None) -> str:
        n = self.cfg.node(node_id) if node_id else self.node
        return f"127.0.0.1:{n.sip_port}"

    # -- Asterisk -----------------------------------------------------------------------------

    async def start_asterisk(self) -> float:
        reap_orphans()  # Asterisks left behind by runs that were killed
        seconds = 0.0
        for inst in self.instances.values():
            inst.render(self.cfg, ami_secret=self.cfg.ami_secret, sip_master=self.cfg.sip_secret)
            inst.start(owner_pid=os.getpid())
            seconds = max(seconds, await inst.wait_ready(self.cfg.ami_secret))
        return seconds

    async def stop_asterisk(self) -> None:
        for inst in self.instances.values():
            await asyncio.to_thread(inst.stop)

    # -- service ------------------------------------------------------------------------------

    def build_service(self, cfg: Config | None = None, **kwargs: Any) -> HotlineService:
        cfg = cfg or self.cfg
        return HotlineService(cfg, ami_secret=cfg.ami_secret,
                              personal=PersonalData(cfg.data_key), **kwargs)

    async def start_service(self, cfg: Config | None = None, **kwargs: Any) -> HotlineService:
        """Start the service (``cfg`` may differ from the lab's in database and Redis)."""
        self.service = self.build_service(cfg, **kwargs)
        await self.service.start()
        await self.service.wait_connected()
        return self.service

    async def stop_service(self) -> None:
        if self.service is not None:
            await self.service.stop()
            self.service = None

    # -- SIP parties --------------------------------------------------------------------------

    async def start_sip(self) -> SipPhones:
        from agent_desk.softphone.phones import SipPhones

        if self.sip is None:
            self.sip = await SipPhones(log_dir=self.cfg.data_dir / "phones").start()
        return self.sip

    async def agent(self, agent_id: str, **kwargs: Any) -> Phone:
        sip = await self.start_sip()
        # The phone gets the agent's own credentials, issued as for an agent's machine.
        creds = issue_credentials(self.cfg, agent_id)
        phone = await sip.agent(agent_id, creds.password, server=creds.server, **kwargs)
        await self.wait_qualified(agent_id, creds.server)
        return phone

    async def supervisor(self, phone: str, **kwargs: Any) -> Phone:
        """A supervisor's desk phone ([[supervisors]]), registered on its city's node."""
        sip = await self.start_sip()
        sup = next(p for p in self.cfg.supervisors if p.id == phone)
        node = self.cfg.node(self.cfg.city(sup.city).node)
        server = f"127.0.0.1:{node.sip_port}"
        desk = await sip.agent(phone, sip_password(self.cfg.sip_secret, phone),
                               server=server, **kwargs)
        await self.wait_qualified(phone, server)
        return desk

    async def wait_qualified(self, aor: str, server: str, timeout: float = 20) -> None:
        """Until the node at ``server`` has qualified a phone that just registered: Asterisk
        offers queue calls only to a contact its OPTIONS found reachable, and one answered
        late (a busy machine) waits for the next qualify, 30 s on. A user's phone registers
        long before its first call; a test's rings at once, so it waits here, not in a sleep."""
        inst = next((i for i in self.instances.values()
                     if server.endswith(f":{i.node.sip_port}")), None)
        if inst is None:  # a phone pointed elsewhere on purpose
            return
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            status, out = await aor_status(inst, aor)
            if status == "Reachable":
                return
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{aor} registered but not qualified reachable by "
                                   f"{inst.node.id} in {timeout:.0f} s:\n{out}")
            await asyncio.sleep(0.1)

    async def caller(self, number: str, **kwargs: Any) -> Phone:
        sip = await self.start_sip()
        return await sip.caller(number, **kwargs)

    async def line(self, dest_id: str, **kwargs: Any) -> Phone:
        """The party at the far end of a destination's trunk (a branch center, an emergency
        line), listening where the lab config points that trunk."""
        sip = await self.start_sip()
        dest = self.cfg.destination(dest_id)
        host, _, port = dest.address.rpartition(":")
        return await sip.line(dest.number, port=int(port), host=host, **kwargs)

    async def dial(self, caller: Phone, number: str = "12345", *,
                   trunk: str | None = "nanjing", node_id: str | None = None,
                   **kwargs: Any) -> PhoneCall:
        headers = {"X-Hotline-Trunk": trunk} if trunk else {}
        return await caller.call(f"sip:{number}@{self.sip_server(node_id)}", headers=headers,
                                 **kwargs)

    async def close(self) -> None:
        await self.stop_service()
        if self.sip is not None:
            await self.sip.stop()
            self.sip = None
        await self.stop_asterisk()
