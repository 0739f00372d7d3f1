"""``hotline surge status|propose|apply|return|moves``: the supervisor's surge actions from a
shell. It works beside a running service: moves, proposals and locks are in Redis, the audit in
the database, and actions go to the nodes over AMI (its own connections)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from typing import Any

from common.config import Config
from queueing.surge.model import SurgeError


def add_parser(sub: Any, fn: Any) -> None:
    s = sub.add_parser("surge", help="surges across cities (多援一): figures, moves, audit")
    s.add_argument("action", choices=["status", "propose", "apply", "return", "moves",
                                      "policy"])
    s.add_argument("target", nargs="*",
                   help="propose: a city or queue; apply: a proposal id; return: agent ids")
    s.add_argument("--by", default="cli", help="who acts (recorded in the audit)")
    s.add_argument("--count", type=int, help="propose: ask for this many agents")
    s.add_argument("--limit", type=int, default=20, help="moves: how many")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.add_argument("--auto", choices=["on", "off"], help="policy: lend agents automatically")
    s.add_argument("--max-borrowed", type=int, help="policy: agents lent to one city at most")
    s.add_argument("--max-per-move", type=int, help="policy: agents lent in one move at most")
    s.add_argument("--floor", action="append", default=[], metavar="CITY=N",
                   help="policy: a city's floor (repeatable)")
    s.set_defaults(fn=fn)


async def _manager(cfg: Config, *, with_ami: bool) -> tuple[Any, list[Any], Any]:
    from cases.db import make_engine, migrate
    from cases.surge_audit import SurgeAudit
    from common.redisconn import open_redis
    from queueing.surge.manager import SurgeManager
    from telephony.ami import AmiClient

    engine = make_engine(cfg.database_url)
    await migrate(engine)
    redis = await open_redis(cfg)
    amis: dict[str, AmiClient] = {}
    if with_ami:
        for n in cfg.nodes:
            amis[n.id] = AmiClient(node=n.id, host=n.ami_host, port=n.ami_port,
                                   username=n.ami_username, secret=cfg.ami_secret,
                                   backoff=(0.2, 0.5))
            await amis[n.id].start()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*(a.wait_connected(5) for a in amis.values()),
                                                  return_exceptions=True), 8)
    mgr = SurgeManager(cfg, redis, cfg.redis.prefix, ami_of=lambda n: amis[n],
                       audit=SurgeAudit(engine))
    return mgr, list(amis.values()), (engine, redis)


def _print_status(st: dict[str, Any]) -> None:
    t = st["target"]
    print(f"target: {t['service_level']:.0%} answered within {t['seconds']} s; "
          f"window {st['window_s']} s; auto {'on' if st['auto'] else 'off'}")
    print(f"{'queue':<24}{'state':<8}{'calls/min':>10}{'wait':>6}{'longest':>9}{'SL':>7}"
          f"{'AHT':>6}{'need':>6}{'have':>6}{'lent':>6}{'borrowed':>9}")
    for c in st["cities"]:
        for q in c["queues"]:
            sl = "-" if q["service_level"] is None else f"{q['service_level']:.0%}"
            print(f"{q['queue']:<24}{q['state']:<8}{q['arrivals_per_min']:>10.1f}"
                  f"{q['waiting']:>6}{q['longest_wait_s']:>8.0f}s{sl:>7}{q['aht_s']:>5.0f}s"
                  f"{q['agents_needed']:>6}{q['agents_present']:>6}{len(q['lent_out']):>6}"
                  f"{len(q['borrowed_in']):>9}")
    for m in st["moves"]:
        print(f"lent: {m['agent']} {m['name']} {m['home_city']} → {m['to_city']} "
              f"({m['queue']}, penalty {m['penalty']}, by {m['by']})")


async def run(cfg: Config, args: argparse.Namespace) -> int:
    needs_ami = args.action in ("propose", "apply", "return")
    mgr, amis, (engine, redis) = await _manager(cfg, with_ami=needs_ami)
    out: Any
    try:
        if args.action == "status":
            out = await mgr.status()
            if not args.json:
                _print_status(out)
                return 0
        elif args.action == "propose":
            if len(args.target) != 1:
                print("propose needs one city or queue", file=sys.stderr)
                return 2
            out = await mgr.proposal(args.target[0], count=args.count)
            if not args.json:
                print(f"proposal {out['id']} for {out['queue']}: {out['reason']}")
                for a in out["agents"]:
                    print(f"  {a['agent']} {a['name']} from {a['from_city']} (level "
                          f"{a['level']}, {a['state']})")
                print(f"  forecast service level after: {out['after']['forecast_sl']:.0%}")
                for n in out["notes"]:
                    print(f"  note: {n}")
                print(f"apply with: hotline surge apply {out['id']} --by <you>")
                return 0
        elif args.action == "apply":
            out = await mgr.apply(args.target[0], by=args.by)
        elif args.action == "return":
            out = await mgr.return_agents(list(args.target), by=args.by)
        elif args.action == "policy":
            changes: dict[str, Any] = {}
            if args.auto:
                changes["auto"] = args.auto == "on"
            if args.max_borrowed is not None:
                changes["max_borrowed_per_city"] = args.max_borrowed
            if args.max_per_move is not None:
                changes["max_per_move"] = args.max_per_move
            if args.floor:
                current = (await mgr.load_policy()).get("floors", dict(cfg.surge.floors))
                for item in args.floor:
                    city, _, n = item.partition("=")
                    if not n.isdigit():
                        print(f"--floor {item}: expected CITY=N", file=sys.stderr)
                        return 2
                    current[city] = int(n)
                changes["floors"] = current
            out = await mgr.set_policy(args.by, **changes) if changes else (
                await mgr.status())["limits"] | {"auto": mgr.s.auto}
        else:
            out = await mgr.moves(args.limit)
        print(json.dumps(out, ensure_ascii=False, indent=2, default=str))
        return 0
    except SurgeError as exc:
        print(f"surge {args.action}: {exc.code}: {exc.message}", file=sys.stderr)
        return 3
    finally:
        for a in amis:
            await a.stop()
        await redis.aclose()
        await engine.dispose()
