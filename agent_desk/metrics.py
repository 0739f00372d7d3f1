"""Prometheus text exposition of what operators watch: calls and cases, queue waits, service
level and abandon rate, AMI health (connected, resyncs, malformed lines, events not yet
handled: the service's lag behind Asterisk), routing fallbacks and the transcription backlog.

Served by the web app at ``/metrics`` to scrapers on the loopback, or to any address with the
bearer token in ``HOTLINE_METRICS_TOKEN``: the figures carry no personal data, but queue
names and agent counts are still not for the public."""

from __future__ import annotations

import hmac
import time
from collections import Counter
from typing import Any

LOOPBACK = {"127.0.0.1", "::1"}


def allowed(remote: str | None, authorization: str | None, token: str | None) -> bool:
    if token and authorization and hmac.compare_digest(
            authorization.encode(), f"Bearer {token}".encode()):
        return True
    return remote in LOOPBACK


class Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self._declared: set[str] = set()

    def add(self, name: str, kind: str, help_: str, value: float | int | None,
            **labels: str) -> None:
        if value is None:
            return
        if name not in self._declared:
            self._declared.add(name)
            self.lines += [f"# HELP {name} {help_}", f"# TYPE {name} {kind}"]
        label = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        self.lines.append(f"{name}{{{label}}} {float(value):g}" if label
                          else f"{name} {float(value):g}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _escape(v: str) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


async def exposition(service: Any, board: Any) -> str:
    out = Exposition()
    stats = service.stats()
    out.add("hotline_up", "gauge", "The service is running.", 1)
    out.add("hotline_uptime_seconds", "gauge", "Seconds since the service started.",
            round(time.time() - service.started_at, 1) if service.started_at else 0)
    for node, n in stats["nodes"].items():
        ami = service.nodes[node].ami
        out.add("hotline_ami_connected", "gauge", "1 while the node's AMI is connected.",
                int(bool(n["connected"])), node=node)
        out.add("hotline_ami_events_total", "counter", "AMI events handled.", n["events"],
                node=node)
        out.add("hotline_ami_event_backlog", "gauge",
                "AMI events received and not yet handled (the service's lag).",
                ami._events.qsize(), node=node)
        out.add("hotline_ami_resyncs_total", "counter", "Resynchronisations after connecting.",
                n["resyncs"], node=node)
        out.add("hotline_ami_malformed_total", "counter", "Malformed AMI messages skipped.",
                n["malformed"], node=node)
        out.add("hotline_active_calls", "gauge", "Calls in progress.", n["active_calls"],
                node=node)
        out.add("hotline_cel_completed_total", "counter",
                "Calls completed from Asterisk's CEL (seen while the service was away).",
                n["cel_completed"], node=node)
    out.add("hotline_case_facts_total", "counter", "Call facts applied to cases.",
            stats["facts_applied"], result="applied")
    out.add("hotline_case_facts_total", "counter", "Call facts applied to cases.",
            stats["facts_duplicate"], result="duplicate")
    redis = stats.get("redis")
    if redis:
        out.add("hotline_redis_up", "gauge", "1 while Redis answers the service.",
                int(bool(redis["up"])))
        for what, help_ in (("outages", "Times Redis stopped answering."),
                            ("losses", "Times Redis came back without the service's data."),
                            ("recoveries", "Rebuilds of the live state after a loss.")):
            out.add(f"hotline_redis_{what}_total", "counter", help_, redis[what])
    out.add("hotline_routes_total", "counter", "Routing decisions.", stats["routes"])
    out.add("hotline_route_fallbacks_total", "counter",
            "Calls that took the fallback queue (router unavailable).",
            stats["route_fallbacks"])
    out.add("hotline_transfer_handovers_total", "counter",
            "Calls handed over to 12345 by emergency lines or branch centers.",
            stats["transfers"]["handovers"])
    now = time.time()
    for q, v in board.snapshot()["queues"].items():
        out.add("hotline_queue_waiting", "gauge", "Callers waiting.", v["waiting"], queue=q)
        out.add("hotline_queue_longest_wait_seconds", "gauge", "The longest wait now.",
                round(now - v["longest_since"], 1) if v["longest_since"] else 0, queue=q)
        out.add("hotline_queue_answered_total", "counter", "Calls answered.", v["answered"],
                queue=q)
        out.add("hotline_queue_abandoned_total", "counter", "Callers who hung up waiting.",
                v["abandoned"], queue=q)
        out.add("hotline_queue_service_level_ratio", "gauge",
                f"Share answered within {board.sl_s} s.", v["service_level"], queue=q)
        out.add("hotline_queue_abandon_ratio", "gauge", "Share abandoned.", v["abandon_rate"],
                queue=q)
        out.add("hotline_queue_asa_seconds", "gauge", "Average speed of answer.", v["asa"],
                queue=q)
    states = Counter(str(a.get("state", "unknown")) for a in board.agents.values())
    for state, n in sorted(states.items()):
        out.add("hotline_agents", "gauge", "Agents by state.", n, state=state)
    transcripts = getattr(service, "transcripts", None)
    if transcripts is not None:
        counts = await transcripts.queue.counts()
        for state, n in counts.items():
            out.add("hotline_transcription_jobs", "gauge", "Transcription jobs by state.", n,
                    state=state)
    return out.text()
