"""The ``hotline`` command.

    hotline config check                 validate the configuration file
    hotline asterisk runtime             find or build (and cache) the Asterisk runtime
    hotline asterisk render|up|down|status|cli "CMD"   manage this config's Asterisk nodes
    hotline serve                        run the service (AMI, router, case records, workers)
    hotline softphone --agent 1001 --credentials FILE   an agent's pjsua2 softphone
    hotline softphone credentials --agent 1001 --out FILE   issue that agent's credentials
    hotline cases [--limit N]            the latest case records
    hotline callers add|remove NUMBER [--category elderly|disabled]   green channel (绿色通道)
    hotline db upgrade                   apply database migrations
    hotline asr install-model FILE.zip   unpack, verify and check a Vosk model
    hotline asr backlog [--days N]       transcribe calls that have no transcript yet
    hotline asr purge                    delete recordings past the retention period
    hotline privacy purge [--dry-run]    the retention job once: recordings, transcripts,
                                         personal fields of old cases (docs/security.md)
    hotline privacy rekey                re-encrypt personal data with a new data key
    hotline surge status|propose|apply|return|moves   surges across cities (docs/surge.md)
    hotline intake token --channel wechat [--name N] | tokens | revoke ID
                                         the channels' API tokens (docs/intake.md)
    hotline knowledge import|export FILE [--publish|--submit]   the knowledge base (知识库)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from common.config import Config, ConfigError, load_config

EXIT_CONFIG = 2
log = logging.getLogger("hotline.serve")


def _config_path(args: argparse.Namespace) -> Path:
    return Path(args.config or os.environ.get("HOTLINE_CONFIG") or "hotline.toml")


def _load(args: argparse.Namespace) -> Config:
    return load_config(_config_path(args))


def cmd_config_check(args: argparse.Namespace) -> int:
    from common.config import MAKE_RANDOM_KEY, random_key_weakness, secret_weakness

    cfg = _load(args)
    problems = []
    for what, env in (("AMI secret", cfg.security.ami_secret_env),
                      ("SIP secret", cfg.security.sip_secret_env)):
        value = os.environ.get(env, "")
        if len(value) < 12:
            problems.append(f"  {what}: set {env} (>= 12 characters) before starting")
        elif why := secret_weakness(value):
            problems.append(f"  {what}: {env} is too weak: {why}")
    for what, env in (("data key", cfg.security.data_key_env),
                      ("session secret", cfg.web.session_secret_env)):
        if why := random_key_weakness(os.environ.get(env, "")):
            problems.append(f"  {what}: {env} is not usable: {why}. {MAKE_RANDOM_KEY}")
    # The webhooks' master secret: needed once a department has a webhook_url.
    hooked = [d.id for d in cfg.case_loop.departments if d.webhook_url]
    env = cfg.webhooks.secret_env
    value = os.environ.get(env, "")
    if cfg.webhooks.enabled and (value or hooked) and (why := random_key_weakness(value)):
        problems.append(f"  webhook secret: {env} is not usable: {why}. {MAKE_RANDOM_KEY}")
    print(f"{_config_path(args)}: OK — {len(cfg.nodes)} node(s), {len(cfg.cities)} cities, "
          f"{len(cfg.agents)} agents, {len(cfg.skills)} skills, {len(cfg.trunks)} trunks")
    if problems:
        print("environment:\n" + "\n".join(problems))
        return EXIT_CONFIG
    return 0


def cmd_asterisk(args: argparse.Namespace) -> int:
    from telephony.asterisk.instance import AsteriskInstance, instance_dir
    from telephony.asterisk.runtime import container_runtime, ensure_runtime

    # Rendering for a container needs no Asterisk here: it mounts the files at /srv/hotline.
    runtime = (container_runtime() if args.action == "render" and args.for_container
               else ensure_runtime())
    if args.action == "runtime":
        print(f"Asterisk {runtime.version} ({runtime.kind}"
              + (f" at {runtime.root})" if runtime.root else ")"))
        return 0
    cfg = _load(args)
    nodes = [n for n in cfg.nodes if (n.mode == "managed" or args.action == "render")
             and (not args.node or n.id == args.node)]
    if not nodes:
        print("no managed node matches", file=sys.stderr)
        return 1
    for node in nodes:
        inst = AsteriskInstance(runtime, instance_dir(cfg, node), node)
        if args.action == "render":
            for p in inst.render(cfg, ami_secret=cfg.ami_secret, sip_master=cfg.sip_secret):
                print(p)
        elif args.action == "up":
            inst.render(cfg, ami_secret=cfg.ami_secret, sip_master=cfg.sip_secret)
            pid = inst.start()
            secs = asyncio.run(inst.wait_ready(cfg.ami_secret))
            print(f"node {node.id}: Asterisk up (pid {pid}) in {secs:.1f} s — SIP "
                  f"{node.sip_host}:{node.sip_port}, AMI {node.ami_host}:{node.ami_port}")
        elif args.action == "down":
            was = inst.stop()
            print(f"node {node.id}: {'stopped' if was else 'was not running'}")
        elif args.action == "status":
            running = inst.pid()
            print(f"node {node.id}: " + (f"running (pid {running})" if running else "stopped"))
            if running:
                print(inst.cli("core show channels count").strip())
        elif args.action == "cli":
            print(inst.cli(" ".join(args.command)), end="")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from common.logs import setup_logging
    from common.privacy import PersonalData
    from hotline.desk import start_web
    from hotline.service import HotlineService

    cfg = _load(args)
    setup_logging(cfg.service.log_level, cfg.service.log_format)

    async def run() -> None:
        # The loop's threads for blocking calls (to_thread): ours, so that the stop can leave
        # a stuck one behind instead of waiting for it (see _exit_when_threads_linger).
        loop = asyncio.get_running_loop()
        executor = ThreadPoolExecutor(thread_name_prefix="hotline-io")
        loop.set_default_executor(executor)
        service = HotlineService(cfg, ami_secret=cfg.ami_secret,
                                 personal=PersonalData(cfg.data_key, cfg.previous_data_keys))
        await service.start()
        # The console and wallboard run in the service unless --no-web.
        runner = None
        if not getattr(args, "no_web", False):
            runner, _console = await start_web(service)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        began = time.monotonic()
        log.info("stopping")
        if runner is not None:
            await runner.cleanup()
        web_s = time.monotonic() - began
        await service.stop()
        log.info("stopped", extra={"web_s": round(web_s, 1),
                                   "seconds": round(time.monotonic() - began, 1)})
        # What could still hold the process up: tasks not finished, threads of the default
        # executor still in a blocking call (asyncio.run waits for both before it returns).
        left = [t.get_name() for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if left:
            log.warning("tasks still running at exit", extra={"tasks": left[:20]})
        executor.shutdown(wait=False, cancel_futures=True)
        loop.set_default_executor(ThreadPoolExecutor(max_workers=1))

    try:  # libuv's loop roughly doubles what one core answers over FastAGI (bench/)
        import uvloop
    except ImportError:
        asyncio.run(run())
    else:
        uvloop.run(run())
    _exit_when_threads_linger()
    return 0


def _exit_when_threads_linger(grace_s: float = 10.0) -> None:
    """Every part has stopped and written what it had: a thread still in a blocking call (a
    stray to_thread, a pool's helper) must not keep a stopped service from exiting, which its
    supervisor would end with SIGKILL. Wait ``grace_s`` for them, then say which and exit."""
    import threading
    import traceback

    deadline = time.monotonic() + grace_s
    while True:
        alive = [t for t in threading.enumerate()
                 if t is not threading.main_thread() and not t.daemon and t.is_alive()]
        if not alive or time.monotonic() > deadline:
            break
        alive[0].join(0.2)
    if alive:
        frames = sys._current_frames()
        log.warning("threads still busy after the stop; exiting anyway", extra={
            "threads": [f"{t.name}: " + " < ".join(
                f"{f.name}:{f.lineno}" for f in traceback.extract_stack(
                    frames[t.ident])[-3:]) if t.ident in frames else t.name
                for t in alive[:10]]})
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(0)


def cmd_health(args: argparse.Namespace) -> int:
    """The container's health check: the running service answers on its web port and every
    node's AMI is connected (read from its own /metrics, served to the loopback)."""
    import urllib.error
    import urllib.request

    cfg = _load(args)
    host = "127.0.0.1" if cfg.web.host in ("0.0.0.0", "", "127.0.0.1") else cfg.web.host
    url = f"http://{host}:{cfg.web.port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as resp:
            text = resp.read().decode()
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        print(f"unhealthy: the service does not answer at {url} ({exc})", file=sys.stderr)
        return 1
    def value(line: str) -> float:  # prometheus_client writes 1.0 where we wrote 1
        try:
            return float(line.rsplit(" ", 1)[1])
        except (IndexError, ValueError):
            return 0.0
    lines = text.splitlines()
    up = any(line.startswith("hotline_up ") and value(line) == 1 for line in lines)
    nodes = {line.split('node="', 1)[1].split('"', 1)[0]: value(line) == 1
             for line in lines if line.startswith("hotline_ami_connected{")}
    down = sorted(n for n, ok in nodes.items() if not ok)
    missing = sorted({n.id for n in cfg.nodes} - set(nodes))
    if not up or down or missing:
        print(f"unhealthy: AMI not connected to {', '.join(down + missing) or '?'}",
              file=sys.stderr)
        return 1
    print(f"healthy: {len(nodes)} node(s) connected")
    return 0


def cmd_softphone(args: argparse.Namespace) -> int:
    from agent_desk.softphone.credentials import (
        issue_credentials,
        softphone_credentials,
        write_credentials,
    )

    cfg = _load(args)
    if args.action == "credentials":
        # On the service's host (it needs the master SIP secret): one agent's password only.
        creds = issue_credentials(cfg, args.agent)
        if args.out is None:
            print(json.dumps(asdict(creds), indent=2))
        else:
            write_credentials(args.out, creds)
            print(f"credentials of agent {creds.agent} written to {args.out} (mode 0600): "
                  f"give them to that agent only; their softphone runs with "
                  f"--credentials {args.out.name}")
        return 0
    from agent_desk.softphone.phones import run_softphone

    creds = softphone_credentials(cfg, args.agent, args.credentials)
    return asyncio.run(run_softphone(cfg, creds, answer=args.answer,
                                     play=args.play, record_dir=args.record,
                                     audio=args.audio))


def cmd_callers(args: argparse.Namespace) -> int:
    """Register or remove a green-channel caller (elderly or disabled): running services
    hear of it at once over Redis and route the next call with priority."""
    from cases.db import make_engine, migrate, sessionmaker
    from common.privacy import PersonalData, mask_number
    from common.redisconn import open_redis
    from queueing.routing.lookups import CallerProfiles, notify_services, routing_channel

    cfg = _load(args)

    async def run() -> int:
        engine = make_engine(cfg.database_url)
        redis = await open_redis(cfg)
        try:
            await migrate(engine)
            channel = routing_channel(cfg.redis.prefix)

            async def notify(kind: str, caller_hash: str) -> None:
                await notify_services(redis, channel, kind, caller_hash)

            profiles = CallerProfiles(sessionmaker(engine), PersonalData(cfg.data_key),
                                      notify)
            if args.action == "add":
                try:
                    masked = await profiles.register(args.number, args.category,
                                                     by=f"cli:{os.environ.get('USER', '?')}")
                except ValueError as exc:
                    print(f"callers add: {exc}", file=sys.stderr)
                    return 1
                print(f"{masked}: green channel ({args.category})")
                return 0
            removed = await profiles.remove(args.number)
            print(f"{mask_number(args.number)}: "
                  + ("removed" if removed else "not registered"))
            return 0 if removed else 1
        finally:
            await redis.aclose()
            await engine.dispose()

    return asyncio.run(run())


def cmd_cases(args: argparse.Namespace) -> int:
    from cases.db import make_engine, sessionmaker
    from cases.report import format_case
    from cases.store import CaseStore
    from common.privacy import PersonalData

    cfg = _load(args)

    async def run() -> None:
        engine = make_engine(cfg.database_url)
        store = CaseStore(sessionmaker(engine), PersonalData(cfg.data_key),
                          cfg.service.timezone)
        for case in reversed(await store.recent(args.limit)):
            print(format_case(case, cfg.service.timezone))
        await engine.dispose()

    asyncio.run(run())
    return 0


def cmd_web_user(args: argparse.Namespace) -> int:
    """Create a user or reset its password (``--role``), or disable / enable it: a reset,
    role change or disabling ends the user's sessions and sockets at once (the change is
    written to Redis for the running services; if Redis cannot be reached they follow
    within a minute)."""
    import getpass

    from redis.exceptions import RedisError

    from agent_desk.audit import SYSTEM
    from agent_desk.web.auth import Users, UserStates
    from cases.db import make_engine, migrate, sessionmaker
    from common.errors import DomainError
    from common.redisconn import redis_client

    cfg = _load(args)
    state_change = args.disable or args.enable
    if not state_change and not args.role:
        print("--role is needed to create a user or reset its password (or give --disable "
              "or --enable)", file=sys.stderr)
        return 2
    if args.role == "agent" and args.agent not in {a.id for a in cfg.agents}:
        print(f"--agent: not an agent of the configuration: {args.agent!r}", file=sys.stderr)
        return 2
    if args.city is not None and args.city not in {"province", *(c.id for c in cfg.cities)}:
        print(f"--city: a city of the configuration or 'province': {args.city!r}",
              file=sys.stderr)
        return 2
    password = "" if state_change else (
        os.environ.get("HOTLINE_NEW_PASSWORD") or getpass.getpass("password: "))

    async def run() -> None:
        engine = make_engine(cfg.database_url)
        redis = redis_client(cfg)  # AUTH and TLS as configured
        try:
            await migrate(engine)
            states: UserStates | None = UserStates(redis, cfg.redis.prefix)
            try:
                await redis.ping()
            except (OSError, RedisError) as exc:
                print(f"warning: Redis not reachable ({exc}); running services see the "
                      f"change within {UserStates.TTL_S} s", file=sys.stderr)
                states = None
            users = Users(sessionmaker(engine), states)
            if state_change:
                await users.set_disabled(args.username, bool(args.disable), actor=SYSTEM)
            else:
                await users.add(args.username, password, args.role, agent_id=args.agent,
                                display_name=args.name, city=args.city,
                                actor=SYSTEM)
        finally:
            await redis.aclose()
            await engine.dispose()

    try:
        asyncio.run(run())
    except (ValueError, DomainError) as exc:
        print(f"not saved: {exc}", file=sys.stderr)
        return 2
    if state_change:
        print(f"user {args.username} {'disabled' if args.disable else 'enabled'}")
    else:
        print(f"user {args.username} ({args.role}) saved")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Seal the audit entries not yet chained, then check the whole chain (exit 1 if an
    entry was changed or deleted)."""
    from agent_desk.audit import Audit
    from cases.db import make_engine, migrate, sessionmaker

    cfg = _load(args)

    async def run() -> int:
        engine = make_engine(cfg.database_url)
        try:
            await migrate(engine)
            report = await Audit(sessionmaker(engine)).verify(seal=not args.no_seal)
        finally:
            await engine.dispose()
        for problem in report.problems:
            print(problem)
        print(f"{report.entries} entries in the chain, {report.unsealed} not yet sealed, "
              f"head {report.head or '-'}: {'intact' if report.ok else 'BROKEN'}")
        return 0 if report.ok else 1

    return asyncio.run(run())


def cmd_db(args: argparse.Namespace) -> int:
    from cases.db import make_engine, migrate
    from common.privacy import PersonalData

    cfg = _load(args)

    async def run() -> None:
        engine = make_engine(cfg.database_url)
        # Migrations that encrypt existing rows need the data key.
        await migrate(engine, personal=PersonalData(cfg.data_key, cfg.previous_data_keys))
        await engine.dispose()

    asyncio.run(run())
    print("database schema up to date")
    return 0


def cmd_asr(args: argparse.Namespace) -> int:
    cfg = _load(args)
    if args.action == "install-model":
        from asr.install import InstallError, install_model

        if not args.file:
            print("give the model's zip file", file=sys.stderr)
            return 1
        dest = cfg.data_path(cfg.asr.model)
        try:
            install_model(Path(args.file), dest)
        except InstallError as exc:
            print(f"install-model: {exc}", file=sys.stderr)
            return 1
        print(f"model installed at {dest} (asr.model); restart the service to use it")
        return 0
    return asyncio.run(_asr_async(cfg, args))


async def _asr_async(cfg: Config, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    from asr.service import Transcripts
    from cases.db import make_engine, migrate, sessionmaker
    from common.redisconn import open_redis
    from hotline.privacy import recordings_purger
    from telephony.asterisk.instance import recordings_spool

    engine = make_engine(cfg.database_url)
    await migrate(engine)
    redis = await open_redis(cfg)
    sessions = sessionmaker(engine)
    tr = Transcripts(cfg, redis, sessions,
                     spools={n.id: recordings_spool(cfg, n) for n in cfg.nodes})
    try:
        if args.action == "purge":
            report = await recordings_purger(cfg, sessions).purge(datetime.now(UTC),
                                                                  dry_run=False)
            print(f"{report.recordings} recording file(s) deleted")
            return 0
        await tr.start(work=False)
        if tr.model_error:
            print(f"asr model: {tr.model_error}", file=sys.stderr)
            return 1
        await tr.scan_spool()
        since = datetime.now(UTC) - timedelta(days=args.days) if args.days else None
        cases = await tr.backlog(since=since)
        total = len(cases)
        print(f"{total} call(s) to transcribe with {tr.workers} worker(s)")
        done = failed = 0
        results: asyncio.Queue[str] = asyncio.Queue()

        async def one() -> None:
            while (job := await tr.queue.claim()) is not None:
                tr.holding.add(job[0])
                await results.put(await tr.process(*job))
                tr.holding.discard(job[0])

        workers = [asyncio.create_task(one()) for _ in range(tr.workers)]
        for i in range(total):
            status = await results.get()
            done += status == "done"
            failed += status == "failed"
            _progress(i + 1, total, done, failed)
            if all(w.done() for w in workers) and results.empty() and i + 1 < total:
                break
        await asyncio.gather(*workers, return_exceptions=True)
        print(f"\n{done} transcribed, {failed} failed")
        return 0 if failed == 0 else 1
    finally:
        await tr.stop()
        await redis.aclose()
        await engine.dispose()


def _progress(n: int, total: int, done: int, failed: int) -> None:
    width = 30
    filled = width * n // max(total, 1)
    sys.stdout.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {n}/{total} "
                     f"done {done} failed {failed}")
    sys.stdout.flush()


def cmd_privacy(args: argparse.Namespace) -> int:
    """The retention job once (``purge``), or data key rotation (``rekey``)."""
    from cases.db import make_engine, migrate, sessionmaker
    from common.privacy import PersonalData

    cfg = _load(args)
    personal = PersonalData(cfg.data_key, cfg.previous_data_keys)

    async def run() -> int:
        engine = make_engine(cfg.database_url)
        try:
            await migrate(engine, personal=personal)
            sessions = sessionmaker(engine)
            if args.action == "purge":
                from cases.store import CaseStore
                from hotline.privacy import retention_job

                job = retention_job(cfg, sessions, CaseStore(sessions, personal))
                report = await job.run(dry_run=args.dry_run)
                verb = "would be deleted" if args.dry_run else "deleted"
                print(f"recordings {verb}: {report.recordings} file(s) "
                      f"(older than {cfg.recording.retention_days} days)")
                print(f"transcripts {verb}: {report.transcripts} "
                      f"(older than {cfg.privacy.transcript_retention_days} days)"
                      + ("" if args.dry_run else f", {report.segments} segment(s)"))
                print(f"Asterisk CEL rows {verb}: {report.cel_rows} "
                      f"(older than {cfg.privacy.cel_retention_days} days, already read)")
                days = cfg.privacy.case_personal_retention_days
                print(f"cases whose personal fields {verb.replace('deleted', 'blanked')}: "
                      f"{report.cases}" + (f" (older than {days} days)" if days
                                           else " (kept: case_personal_retention_days = 0)"))
                return 0
            from common.rekey import rekey
            from hotline.privacy import rekey_tables

            if not cfg.previous_data_keys:
                # Still worth running: values written before the HKDF derivation are
                # re-encrypted under it (the old derivation then only has old backups to read).
                print(f"privacy rekey: no previous key in "
                      f"{cfg.security.data_key_previous_env}: re-encrypting under the current "
                      f"key only", flush=True)
            out = await rekey(sessions, rekey_tables(personal), progress=lambda name, n: print(
                f"{name}: {n} row(s) re-encrypted", flush=True))
            print(f"done: {sum(out.values())} row(s); restart the services with "
                  f"{cfg.security.data_key_env} only")
            return 0
        except ValueError as exc:  # a value no key decrypts
            print(f"privacy {args.action}: {exc}", file=sys.stderr)
            return 1
        finally:
            await engine.dispose()

    return asyncio.run(run())


def cmd_surge(args: argparse.Namespace) -> int:
    from queueing.surge.cli import run

    return asyncio.run(run(_load(args), args))


def cmd_intake(args: argparse.Namespace) -> int:
    from agent_desk.intake.cli import run

    return asyncio.run(run(_load(args), args))


def cmd_knowledge(args: argparse.Namespace) -> int:
    from agent_desk.knowledge.cli import run

    return asyncio.run(run(_load(args), args))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hotline", description="12345 hotline contact center")
    p.add_argument("--config", help="configuration file (default: $HOTLINE_CONFIG or "
                                    "./hotline.toml)")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("config", help="configuration")
    c.add_argument("action", choices=["check"])
    c.set_defaults(fn=cmd_config_check)

    a = sub.add_parser("asterisk", help="the Asterisk nodes this config manages")
    a.add_argument("action", choices=["runtime", "render", "up", "down", "status", "cli"])
    a.add_argument("command", nargs="*", help="for cli: the Asterisk CLI command")
    a.add_argument("--node", help="only this node")
    a.add_argument("--for-container", action="store_true",
                   help="render: for an Asterisk container mounting the files at /srv/hotline")
    a.set_defaults(fn=cmd_asterisk)

    s = sub.add_parser("serve", help="run the service (with the web console unless --no-web)")
    s.add_argument("--no-web", action="store_true", help="without the console and wallboard")
    s.set_defaults(fn=cmd_serve)

    h = sub.add_parser("health", help="is the running service up with every node connected "
                                      "(exit 0/1; the container's health check)")
    h.add_argument("--timeout", type=float, default=5.0)
    h.set_defaults(fn=cmd_health)
    w = sub.add_parser("web", help="the console's users")
    wsub = w.add_subparsers(dest="web_cmd", required=True)
    wu = wsub.add_parser("user", help="create a user or reset a password (asked for, or "
                                      "from HOTLINE_NEW_PASSWORD)")
    wu.add_argument("username")
    wu.add_argument("--role", choices=["agent", "supervisor", "admin", "auditor", "qa"],
                    help="create the user or reset its password with this role")
    state = wu.add_mutually_exclusive_group()
    state.add_argument("--disable", action="store_true",
                       help="disable the user: its sessions and sockets end at once")
    state.add_argument("--enable", action="store_true", help="enable it again")
    wu.add_argument("--agent", help="the agent's id (for role agent)")
    wu.add_argument("--name", default="", help="display name")
    wu.add_argument("--city", help="whose cases the user sees: a city id, or 'province' for "
                                   "every city (default: an agent's own city, the province "
                                   "for other roles; unchanged on a reset)")
    wu.set_defaults(fn=cmd_web_user)
    au = sub.add_parser("audit", help="the audit log")
    ausub = au.add_subparsers(dest="audit_cmd", required=True)
    av = ausub.add_parser("verify", help="check the audit log's hash chain (exit 1 if an "
                                         "entry was changed or deleted)")
    av.add_argument("--no-seal", action="store_true",
                    help="do not chain the entries written since the last seal first")
    av.set_defaults(fn=cmd_audit_verify)

    sp = sub.add_parser("softphone", help="an agent's SIP softphone (pjsua2), or issue an "
                                          "agent's credentials for it")
    sp.add_argument("action", nargs="?", choices=["run", "credentials"], default="run",
                    help="credentials: print or write (--out) the agent's own SIP credentials "
                         "(where the service runs: needs the master SIP secret)")
    sp.add_argument("--agent", required=True)
    sp.add_argument("--credentials", type=Path,
                    help="the agent's credentials file (else HOTLINE_AGENT_PASSWORD)")
    sp.add_argument("--out", type=Path, help="credentials: write them to this file (0600)")
    sp.add_argument("--answer", choices=["auto", "manual", "console"], default="auto",
                    help="console: answer, hold and hang up when the web console says so")
    sp.add_argument("--play", type=Path, help="WAV to play into calls (default: silence)")
    sp.add_argument("--audio", choices=["auto", "device", "null"], default="auto",
                    help="auto: the sound card if there is one; null: none (silence is "
                         "still sent, so a listening agent is never cut off)")
    sp.add_argument("--record", type=Path, help="folder for recordings of what it hears")
    sp.set_defaults(fn=cmd_softphone)

    cs = sub.add_parser("cases", help="the latest case records")
    cs.add_argument("--limit", type=int, default=20)
    cs.set_defaults(fn=cmd_cases)

    cl = sub.add_parser("callers", help="green-channel callers (elderly, disabled)")
    cl.add_argument("action", choices=["add", "remove"])
    cl.add_argument("number", help="the caller's number")
    cl.add_argument("--category", choices=["elderly", "disabled"], default="elderly")
    cl.set_defaults(fn=cmd_callers)

    db = sub.add_parser("db", help="database")
    db.add_argument("action", choices=["upgrade"])
    db.set_defaults(fn=cmd_db)

    asr = sub.add_parser("asr", help="recordings and transcripts")
    asr.add_argument("action", choices=["install-model", "backlog", "purge"])  # purge: recordings
    asr.add_argument("file", nargs="?", help="install-model: the model's zip file")
    asr.add_argument("--days", type=int, default=0, help="backlog: only the last N days")
    asr.set_defaults(fn=cmd_asr)
    pv = sub.add_parser("privacy", help="personal data: retention purge, key rotation")
    pv.add_argument("action", choices=["purge", "rekey"])
    pv.add_argument("--dry-run", action="store_true",
                    help="purge: only count what is due, change nothing")
    pv.set_defaults(fn=cmd_privacy)
    from queueing.surge.cli import add_parser as add_surge_parser

    add_surge_parser(sub, cmd_surge)
    from agent_desk.intake.cli import add_parser as add_intake_parser

    add_intake_parser(sub, cmd_intake)
    from agent_desk.knowledge.cli import add_parser as add_knowledge_parser

    add_knowledge_parser(sub, cmd_knowledge)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args) or 0)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from telephony.asterisk.runtime import AsteriskRuntimeError

        if isinstance(exc, AsteriskRuntimeError):
            print(f"asterisk runtime: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
