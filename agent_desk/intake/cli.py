"""``hotline intake token|tokens|revoke``: the channels' API tokens from a shell (where the
service's database is). A token is printed once; only its hash is kept."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from agent_desk.audit import Actor
from agent_desk.intake.models import API_CHANNELS
from agent_desk.intake.tokens import ChannelTokens
from cases.db import make_engine, migrate, sessionmaker
from common.config import Config
from common.errors import DomainError

CLI = Actor("cli", "system")


def add_parser(sub: Any, fn: Any) -> None:
    p = sub.add_parser("intake", help="cases without a call: the channels' API tokens")
    p.add_argument("action", choices=["token", "tokens", "revoke"],
                   help="token: issue one (printed once); tokens: list them; revoke: by id")
    p.add_argument("id", nargs="?", type=int, help="revoke: the token's id")
    p.add_argument("--channel", choices=list(API_CHANNELS), help="token: the channel")
    p.add_argument("--name", default="", help="token: who uses it (\"微信公众号\")")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(fn=fn)


async def run(cfg: Config, args: argparse.Namespace) -> int:
    if args.action == "token" and not args.channel:
        print("--channel is needed to issue a token", file=sys.stderr)
        return 2
    if args.action == "revoke" and not args.id:
        print("revoke: give the token's id (hotline intake tokens lists them)",
              file=sys.stderr)
        return 2
    engine = make_engine(cfg.database_url)
    try:
        await migrate(engine)
        tokens = ChannelTokens(sessionmaker(engine))
        if args.action == "token":
            row, token = await tokens.issue(args.channel, args.name or args.channel, CLI)
            if args.json:
                print(json.dumps({**row, "token": token}, ensure_ascii=False))
            else:
                print(f"token {row['id']} for channel {row['channel']} (shown once, keep it "
                      f"secret):\n{token}")
        elif args.action == "tokens":
            rows = await tokens.list()
            if args.json:
                print(json.dumps(rows, ensure_ascii=False))
            for r in rows if not args.json else []:
                state = f"revoked {r['revoked_at']}" if r["revoked_at"] else "active"
                print(f"{r['id']:>4}  {r['channel']:<12} {r['hint']:<24} {state:<40} "
                      f"{r['name']}")
        else:
            row = await tokens.revoke(args.id, CLI)
            print(f"token {row['id']} ({row['channel']}) revoked at {row['revoked_at']}")
    except DomainError as exc:
        print(f"not done: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await engine.dispose()
    return 0
