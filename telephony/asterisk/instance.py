"""One Asterisk node run by this project: render its config from the project's file, start it,
wait until AMI answers, stop it cleanly.

An instance directory holds everything the node writes::

    etc/      rendered from asterisk-conf/*.j2 (secrets inside: mode 0600)
    lib/      astdb (persistent queue members: agents' interfaces, no callers)
    spool/    monitor/ recordings while a call lasts (then sealed and moved: asr/), outgoing
    log/      messages.log, security.log, cel.db (CEL: the call history read after outages;
              purged by retention). No queue_log and no verbose log: they hold callers'
              numbers in clear (logger.conf).
    run/      control socket and pid
    sounds/   the Mandarin prompt; moh/ music on hold

Asterisk runs as its own user (asterisk.conf ``runuser``), never as root: at each start the
instance's files are handed to that user and its directories made private (0700).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from common.config import PROVINCE_POOL, Config, NodeConfig
from common.queues import all_queues, fallback_queue, queue_name
from common.secrets import sip_password
from telephony.asterisk import sounds
from telephony.asterisk.certs import sip_certificate
from telephony.asterisk.runtime import CONTAINER_VERSION, AsteriskRuntime, AsteriskRuntimeError

log = logging.getLogger(__name__)

# The templates live in the repository's asterisk-conf/; an installed package (the service's
# image) is told where they are by HOTLINE_ASTERISK_CONF.
TEMPLATES = Path(__file__).resolve().parents[2] / "asterisk-conf"


# Inside an instance directory. res_cdrel_custom (cel_sqlite3_custom.conf) writes CEL to
# <astlogdir>/<table>.db, and the table is ``cel``.
CEL_DB = Path("log") / "cel.db"
RECORDINGS_SPOOL = Path("spool") / "monitor"
# Directories that hold callers' data or secrets: the Asterisk user's only.
PRIVATE_DIRS = ("", "etc", "lib", "spool", "spool/monitor", "spool/outgoing", "log", "run",
                "cache")


def _cel_db_in_wal(path: Path) -> None:
    """Asterisk writes a CEL row per event, each its own transaction: in SQLite's default
    rollback-journal mode that is a journal file made, synced and deleted per row. The
    database made in WAL mode (kept in the file) appends to one log instead."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            db.execute("PRAGMA journal_mode=WAL")


def instance_dir(cfg: Config, node: NodeConfig) -> Path:
    """Where a managed node's Asterisk keeps everything it writes."""
    return cfg.data_dir / "asterisk" / node.id


def cel_path(cfg: Config, node: NodeConfig) -> Path:
    """The node's CEL database as this service sees it: ``[nodes] cel_path`` when set (an
    external node's shared volume), else the one in its instance directory."""
    return node.cel_path or instance_dir(cfg, node) / CEL_DB


def recordings_spool(cfg: Config, node: NodeConfig) -> Path:
    """Where the node's MixMonitor writes recordings (asr/ takes them from there)."""
    return instance_dir(cfg, node) / RECORDINGS_SPOOL


# Under sounds/: the 回访 prompts made per call (agent_desk/followup writes them there).
FOLLOWUP_SOUNDS = "followup"
WELCOME_MOH = "moh-welcome"
KEEP_PLACE_SOUNDS = "keep"


def sounds_dir(cfg: Config, node: NodeConfig) -> Path:
    """Where the node's Asterisk finds its prompts (``${HOTLINE_SOUNDS}`` in the dialplan)."""
    return instance_dir(cfg, node) / "sounds"


def general_intro(template: str) -> str:
    """The 回访 prompt without a case (when the one naming it could not be made): its
    sentences that name nothing."""
    kept = [x for x in re.split(r"(?<=[。！？.!?])", template) if x.strip() and "{" not in x]
    return "".join(kept) or "您好，这里是幺二三四五热线回访。"


def templates_dir() -> Path:
    where = Path(os.environ.get("HOTLINE_ASTERISK_CONF") or TEMPLATES)
    if not any(where.glob("*.conf.j2")):
        raise AsteriskRuntimeError(
            f"no Asterisk configuration templates (*.conf.j2) in {where}: set "
            "HOTLINE_ASTERISK_CONF to the project's asterisk-conf folder")
    return where

# Modules that reach outside the box, need hardware or services we don't run, or that
# Debian's default install cannot load (res_hep_pjsip declines without hep.conf).
NOLOAD = [
    "res_hep.so", "res_hep_pjsip.so", "res_hep_rtcp.so",
    "chan_iax2.so", "chan_unistim.so", "chan_motif.so", "chan_console.so",
    "res_xmpp.so", "res_calendar.so", "res_calendar_caldav.so", "res_calendar_ews.so",
    "res_calendar_exchange.so", "res_calendar_icalendar.so",
    "cdr_csv.so", "cdr_custom.so", "cdr_manager.so", "cdr_odbc.so", "cdr_adaptive_odbc.so",
    "cdr_pgsql.so", "cdr_radius.so", "cdr_sqlite3_custom.so", "cdr_tds.so",
    "cel_custom.so", "cel_manager.so", "cel_odbc.so", "cel_pgsql.so", "cel_radius.so",
    "cel_tds.so",
    "res_config_ldap.so", "res_config_odbc.so", "res_config_pgsql.so", "res_config_curl.so",
    "res_config_sqlite3.so", "res_odbc.so", "res_odbc_transaction.so", "func_odbc.so",
    "res_phoneprov.so", "res_pjsip_phoneprov_provider.so", "res_prometheus.so",
    "res_ari.so", "res_ari_applications.so", "res_ari_asterisk.so", "res_ari_bridges.so",
    "res_ari_channels.so", "res_ari_device_states.so", "res_ari_endpoints.so",
    "res_ari_events.so", "res_ari_playbacks.so", "res_ari_recordings.so", "res_ari_sounds.so",
    "res_ari_model.so", "app_stasis.so", "res_stasis_recording.so", "res_stasis_playback.so",
    "res_stasis_answer.so", "res_stasis_snoop.so", "res_stasis_device_state.so",
    "res_stasis_mailbox.so", "res_stasis_test.so",
    "res_pjsip_stir_shaken.so", "res_stir_shaken.so", "res_geolocation.so",
    "res_pjsip_geolocation.so", "res_smdi.so", "res_snmp.so", "res_statsd.so",
    "app_voicemail.so", "app_voicemail_odbc.so", "app_voicemail_imap.so", "app_minivm.so",
    "res_pjsip_publish_asterisk.so", "res_stasis_broadcast.so", "app_stasis_broadcast.so",
    "app_agent_pool.so", "app_amd.so", "res_clialiases.so", "res_pjsip_config_wizard.so",
    "res_stun_monitor.so", "res_parking.so", "res_pjsip_notify.so", "chan_websocket.so",
    "pbx_dundi.so", "pbx_lua.so", "pbx_ael.so", "res_ael_share.so", "pbx_realtime.so",
    "app_festival.so", "app_jack.so", "app_mp3.so", "app_sms.so", "app_alarmreceiver.so",
    "res_fax.so", "res_fax_spandsp.so", "res_http_media_cache.so", "res_resolver_unbound.so",
    "res_aeap.so", "res_speech_aeap.so", "res_corosync.so",
    "res_mwi_devstate.so", "res_pjsip_mwi.so", "res_pjsip_mwi_body_generator.so",
    "res_pjsip_send_to_voicemail.so", "app_followme.so", "app_directory.so", "res_adsi.so",
    "app_adsiprog.so", "app_getcpeid.so", "res_phoneprov.so", "res_curl.so", "func_curl.so",
]


# The endpoint the sign-language page's browsers call in as (their calls need a ticket).
SIGN_GUEST = "sign-guest"


@dataclass
class AgentView:
    id: str
    city: str
    password: str
    phone: str = "sip"  # "browser": a WebRTC endpoint (DTLS-SRTP, ICE, over WSS)
    # A sign-language seat (browser phone with the seat's skill): its calls carry video.
    video: bool = False


@dataclass
class PeerView:
    """Another node, as this node's inter-node trunk sees it."""

    id: str
    endpoint: str  # this node's endpoint for the peer (also the user the peer calls in as)
    from_user: str  # who this node is to the peer
    host: str
    port: int
    password: str  # the peer's password to call in here
    outbound_password: str  # this node's password at the peer
    tls_port: int  # the peer's SIP/TLS listener (used when [sip_tls] internode is on)


@dataclass
class TlsView:
    """This node's SIP/TLS transport as Asterisk sees it ([sip_tls])."""

    on: bool
    port: int
    cert: str = ""
    key: str = ""
    ca: str = ""


@dataclass
class WebrtcView:
    """This node's secure WebSocket listener for browsers' phones ([webrtc])."""

    on: bool
    port: int
    cert: str = ""
    key: str = ""


class AsteriskInstance:
    def __init__(self, runtime: AsteriskRuntime, directory: Path, node: NodeConfig):
        self.runtime = runtime
        self.dir = directory.resolve()
        self.node = node

    # -- paths ------------------------------------------------------------------------------

    @property
    def ast(self) -> str:
        """This instance's directory as Asterisk sees it."""
        return self.runtime.asterisk_path(self.dir)

    def asterisk_path(self, host_path: Path) -> str:
        rel = Path(host_path).resolve().relative_to(self.dir)
        return f"{self.ast}/{rel}"

    def host_path(self, asterisk_path: str) -> Path:
        if not asterisk_path.startswith(self.ast + "/"):
            raise ValueError(f"{asterisk_path} is outside the instance")
        return self.dir / asterisk_path[len(self.ast) + 1:]

    @property
    def cel_db(self) -> Path:
        return self.dir / CEL_DB

    @property
    def recordings_dir(self) -> Path:
        return self.dir / RECORDINGS_SPOOL

    @property
    def pid_file(self) -> Path:
        return self.dir / "run" / "hotline-asterisk.pid"

    @property
    def log_file(self) -> Path:
        return self.dir / "log" / "console.log"

    # -- render -----------------------------------------------------------------------------

    def render(self, cfg: Config, *, ami_secret: str, sip_master: str) -> list[Path]:
        """Write etc/ from the templates; make prompts and music on hold if missing."""
        for sub in ("etc", "lib/keys", "spool/monitor", "spool/xfer", "spool/outgoing", "log",
                    "run", "cache",
                    "sounds", "moh"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        for sub in PRIVATE_DIRS:
            (self.dir / sub).chmod(0o700)
        _cel_db_in_wal(self.dir / CEL_DB)
        templates = templates_dir()
        env = Environment(
            loader=FileSystemLoader(str(templates)), undefined=StrictUndefined,
            keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
        )
        seat_skill = cfg.sign_language.skill if cfg.sign_language.enabled else None
        agents = [AgentView(a.id, a.city, sip_password(sip_master, a.id), a.phone,
                            video=a.phone == "browser" and seat_skill in a.skills)
                  for a in cfg.agents_of(self.node.id)]
        # Supervisors' desk phones: registered like agents', rung only by the service.
        supervisors = [AgentView(p.id, p.city, sip_password(sip_master, p.id))
                       for p in cfg.supervisors_of(self.node.id)]
        context = {
            "cfg": cfg, "node": self.node, "ast": self.ast, "ami_secret": ami_secret,
            "agents": agents, "supervisors": supervisors, "trunks": cfg.trunks_of(self.node.id),
            "queues": all_queues(cfg), "fallback_queue": fallback_queue(cfg),
            # The queues whose callers this node's agents answer (its cities'): what another
            # node may transfer a caller to over the inter-node trunk.
            "node_queues": [q for q in all_queues(cfg)
                            if q.split("-", 1)[0] in {c.id for c in cfg.cities
                                                     if c.node == self.node.id}],
            "queueing": cfg.queueing, "menu": cfg.menu, "fastagi": cfg.fastagi,
            "noload": NOLOAD,
            "destinations": cfg.destinations, "transfers": cfg.transfers,
            # Inter-node trunks (surges across cities): one endpoint per other node.
            "peers": [PeerView(n.id, f"node-{n.id}", f"node-{self.node.id}",
                               "127.0.0.1" if n.sip_host == "0.0.0.0" else n.sip_host,
                               n.sip_port, sip_password(sip_master, f"node-{n.id}"),
                               sip_password(sip_master, f"node-{self.node.id}"), n.tls_port)
                      for n in cfg.nodes if n.id != self.node.id],
            "sip_tls": cfg.sip_tls, "tls": self._sip_tls(cfg), "webrtc": self._webrtc(cfg),
            # The sign-language page's video calls (guests with a one-time ticket).
            "sign": {"on": cfg.sign_language_node() == self.node.id,
                     "number": cfg.sign_language.number,
                     "queue": queue_name(PROVINCE_POOL, cfg.sign_language.skill),
                     "password": sip_password(sip_master, SIGN_GUEST)},
        }
        if self.node.ami_tls:
            # AMI over TLS: Asterisk (in its root) reads the certificate from its own etc/.
            keys = self.dir / "etc" / "keys"
            keys.mkdir(parents=True, exist_ok=True)
            for src, name in ((self.node.ami_tls_cert, "ami-cert.pem"),
                              (self.node.ami_tls_key, "ami-key.pem")):
                assert src is not None
                path = src if src.is_absolute() else cfg.base_dir / src
                fd = os.open(keys / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(path.read_bytes())
        written = []
        for template in sorted(templates.glob("*.conf.j2")):
            out = self.dir / "etc" / template.name.removesuffix(".j2")
            text = env.get_template(template.name).render(context)
            tmp = out.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            tmp.replace(out)
            written.append(out)
        sounds.speak(cfg.menu.prompt, self.dir / "sounds" / "welcome.wav", tempo=1.3)
        # 一键评价 after the call, and the 回访 call's questions (the rating prompt is asked
        # again there for satisfaction); the 回访 prompt naming each case is made per call.
        for text, name in ((cfg.rating.prompt, "rating"), (cfg.rating.thanks, "rating_thanks"),
                           (cfg.follow_up.resolved_prompt, "followup_resolved"),
                           (cfg.follow_up.thanks, "followup_thanks"),
                           (general_intro(cfg.follow_up.intro), "followup_intro"),
                           (cfg.nobody.offer, "nobody_offer"),
                           (cfg.nobody.message_prompt, "nobody_message"),
                           (cfg.nobody.thanks, "nobody_thanks"),
                           (cfg.keep_place.confirm, "keep_confirm"),
                           (cfg.keep_place.whisper, "keep_whisper")):
            sounds.speak(text, self.dir / "sounds" / f"{name}.wav", tempo=1.3)
        # Made per call by the service: 回访 prompts, keep-my-place whispers naming the case.
        for made in (FOLLOWUP_SOUNDS, KEEP_PLACE_SOUNDS):
            folder = self.dir / "sounds" / made
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o755)
        sounds.music_on_hold(self.dir / "moh" / "chimes.wav")
        # Queue first: the prompt, then the music, as the waiting caller's music on hold
        # (musiconhold.conf [hotline-welcome]: in name order, the last one looping).
        welcome = self.dir / WELCOME_MOH
        welcome.mkdir(parents=True, exist_ok=True)
        for src, name in ((self.dir / "sounds" / "welcome.wav", "1-welcome.wav"),
                          (self.dir / "moh" / "chimes.wav", "2-chimes.wav")):
            shutil.copyfile(src, welcome / name)
        if os.geteuid() == 0 and self.runtime.version != CONTAINER_VERSION:
            # A running Asterisk reloads them as its own user (the container renders as it).
            self.hand_over()
        return written

    def _sip_tls(self, cfg: Config) -> TlsView:
        """Copy the SIP certificate into etc/keys (Asterisk reads it inside its root)."""
        view = TlsView(cfg.sip_tls_on(self.node.id), self.node.tls_port)
        if not view.on:
            return view
        certificate = sip_certificate(cfg)
        keys = self.dir / "etc" / "keys"
        keys.mkdir(parents=True, exist_ok=True)
        for src, name in ((certificate.cert, "sip-cert.pem"), (certificate.key, "sip-key.pem"),
                          (certificate.ca, "sip-ca.pem")):
            fd = os.open(keys / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(src.read_bytes())
        view.cert, view.key, view.ca = (self.asterisk_path(keys / n) for n in (
            "sip-cert.pem", "sip-key.pem", "sip-ca.pem"))
        return view

    def _webrtc(self, cfg: Config) -> WebrtcView:
        """Copy the certificate the WebSocket listener presents into etc/keys (key 0600)."""
        view = WebrtcView(cfg.webrtc_on(self.node.id), self.node.webrtc_port)
        if not view.on:
            return view
        certificate = sip_certificate(cfg)
        keys = self.dir / "etc" / "keys"
        keys.mkdir(parents=True, exist_ok=True)
        for src, name in ((certificate.cert, "http-cert.pem"), (certificate.key, "http-key.pem")):
            fd = os.open(keys / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(src.read_bytes())
        view.cert, view.key = (self.asterisk_path(keys / n)
                               for n in ("http-cert.pem", "http-key.pem"))
        return view

    # -- process ----------------------------------------------------------------------------

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if not _alive(pid):
            return None
        # A recycled pid belongs to some other program: only trust it if it is asterisk (or
        # mid-exec on its way there, when the kernel shows an empty command line).
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return pid if (not cmd or b"asterisk" in cmd) else None

    @property
    def owner_file(self) -> Path:
        return self.dir / "run" / "owner.pid"

    def start(self, *, owner_pid: int | None = None) -> int:
        """Start Asterisk in the background (its own session, so it outlives the caller).

        With ``owner_pid`` (tests, the demo) the instance belongs to that process: if the
        owner dies without stopping it, ``reap_orphans`` does it later."""
        running = self.pid()
        if running:
            return running
        if owner_pid is None:
            self.owner_file.unlink(missing_ok=True)
        else:
            self.owner_file.write_text(str(owner_pid))
        for stale in ("asterisk.ctl", "asterisk.pid"):
            (self.dir / "run" / stale).unlink(missing_ok=True)
        self.hand_over()
        out = open(self.log_file, "ab")
        proc = subprocess.Popen(
            self.runtime.argv(self.dir, "-f"), stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        out.close()
        self.pid_file.write_text(str(proc.pid))
        log.info("asterisk started", extra={"node": self.node.id, "pid": proc.pid})
        return proc.pid

    def hand_over(self) -> None:
        """Give the instance's files to the user Asterisk runs as (it drops root before it
        reads them) and make its directories private."""
        uid, gid = self.runtime.run_user()
        for sub in PRIVATE_DIRS:
            (self.dir / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
            (self.dir / sub).chmod(0o700)
        for path in [self.dir, *self.dir.rglob("*")]:
            os.lchown(path, uid, gid)

    def stop(self, timeout: float = 15.0) -> bool:
        """Stop gracefully (core stop now), then by signal. True if it was running."""
        pid = self.pid()
        if pid is None:
            return False
        try:
            self.cli("core stop now", timeout=5)
        except (subprocess.SubprocessError, OSError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        log.info("asterisk stopped", extra={"node": self.node.id})
        return True

    def kill(self) -> None:
        """Kill -9, as a crash would (for fault tests)."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)

    def cli(self, command: str, timeout: float = 15) -> str:
        res = subprocess.run(
            self.runtime.argv(self.dir, "-rx", command), capture_output=True, text=True,
            timeout=timeout,
        )
        if res.returncode != 0:
            raise subprocess.CalledProcessError(res.returncode, command, res.stdout, res.stderr)
        return res.stdout

    def log_tail(self, lines: int = 20) -> str:
        text = ""
        for f in (self.log_file, self.dir / "log" / "messages.log"):
            try:
                text += f"--- {f.name}\n" + "\n".join(f.read_text(errors="replace")
                                                      .splitlines()[-lines:]) + "\n"
            except OSError:
                pass
        return text

    async def wait_ready(self, secret: str, timeout: float = 60.0) -> float:
        """Wait until AMI accepts our login and Asterisk is fully booted; returns seconds."""
        started = time.monotonic()
        last_error = "no answer"
        while time.monotonic() - started < timeout:
            if self.pid() is None:
                raise RuntimeError(
                    f"asterisk for node {self.node.id} exited during start:\n{self.log_tail()}"
                )
            try:
                if await ami_ready(self.node.ami_plain_host, self.node.ami_port,
                                   self.node.ami_username, secret):
                    return time.monotonic() - started
                last_error = "not fully booted"
            except (TimeoutError, OSError, ConnectionError) as exc:
                last_error = str(exc) or type(exc).__name__
            await asyncio.sleep(0.25)
        raise TimeoutError(
            f"asterisk for node {self.node.id} did not answer on AMI "
            f"{self.node.ami_host}:{self.node.ami_port} in {timeout:.0f} s ({last_error})"
        )


def reap_orphans() -> list[int]:
    """Kill Asterisk instances whose owning process (a test run, a demo) has died."""
    killed = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes()
            if b"asterisk" not in cmd or b"/srv/hotline" not in cmd:
                continue
            source = next((line.split()[3] for line in (proc / "mountinfo").read_text()
                           .splitlines() if line.split()[4] == "/srv/hotline"), None)
        except (OSError, IndexError):
            continue
        if source is None:
            continue
        owner = _read_pid(Path(source) / "run" / "owner.pid")
        if owner is not None and not _alive(owner):
            pid = int(proc.name)
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            log.warning("killed an orphaned asterisk", extra={"pid": pid, "instance": source})
    return killed


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


async def ami_ready(host: str, port: int, username: str, secret: str) -> bool:
    """Log in with a throw-away connection; Asterisk greets it with FullyBooted once booted."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
    try:
        await asyncio.wait_for(reader.readline(), 2)  # banner
        writer.write(
            f"Action: Login\r\nUsername: {username}\r\nSecret: {secret}\r\n"
            "Events: system\r\n\r\n".encode()
        )
        await writer.drain()
        login = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
        if b"Success" not in login:
            raise ConnectionError("AMI login refused: check the AMI secret and manager.conf")
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            msg = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
            if b"Event: FullyBooted" in msg:
                return True
        return False
    finally:
        writer.close()
