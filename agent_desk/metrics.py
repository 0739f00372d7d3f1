"""Prometheus exposition of what operators watch: calls and cases, queue waits, service
level and abandon rate, AMI health (connected, resyncs, malformed lines, events not yet
handled: the service's lag behind Asterisk), routing fallbacks and the transcription backlog.

The figures the service counts are read at scrape time by ``ServiceFigures``, a
prometheus_client collector on the service's own registry (common/metrics.py), beside the
timings the features observe there (routing decisions, AMI event handling and lag, case
writes, transcription jobs) and the process's CPU, memory and file descriptors.

Served by the web app at ``/metrics`` to scrapers on the loopback, or to any address with the
bearer token in ``HOTLINE_METRICS_TOKEN``: the figures carry no personal data, but queue
names and agent counts are still not for the public."""

from __future__ import annotations

import hmac
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

LOOPBACK = {"127.0.0.1", "::1"}


def allowed(remote: str | None, authorization: str | None, token: str | None) -> bool:
    if token and authorization and hmac.compare_digest(
            authorization.encode(), f"Bearer {token}".encode()):
        return True
    return remote in LOOPBACK


class Families:
    """Metric families in the order their first sample is added; a figure that is None is
    left out (as is a family with no figure)."""

    def __init__(self) -> None:
        self.by_name: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}

    def add(self, name: str, kind: str, help_: str, value: float | int | None,
            **labels: str) -> None:
        if value is None:
            return
        family = self.by_name.get(name)
        if family is None:
            family = self.by_name[name] = (
                CounterMetricFamily(name, help_, labels=list(labels)) if kind == "counter"
                else GaugeMetricFamily(name, help_, labels=list(labels)))
        family.add_metric([str(v) for v in labels.values()], float(value))

    def families(self) -> list[Metric]:
        return list(self.by_name.values())


@dataclass
class Figures:
    """What a scrape reads, as plain data: ``stats`` is HotlineService.stats(), ``backlogs``
    each node's AMI events received and not handled, ``queues`` and ``agent_states`` the
    wallboard's, ``transcription_jobs`` the job queue's counts (None: no transcription)."""

    stats: Mapping[str, Any]
    started_at: float
    backlogs: Mapping[str, int]
    queues: Mapping[str, Mapping[str, Any]]
    service_level_s: float
    agent_states: Mapping[str, int]
    transcription_jobs: Mapping[str, int] | None = None
    now: float = field(default_factory=time.time)


def families(f: Figures) -> list[Metric]:
    out = Families()
    stats = f.stats
    out.add("hotline_up", "gauge", "The service is running.", 1)
    out.add("hotline_uptime_seconds", "gauge", "Seconds since the service started.",
            round(f.now - f.started_at, 1) if f.started_at else 0)
    for node, n in stats["nodes"].items():
        out.add("hotline_ami_connected", "gauge", "1 while the node's AMI is connected.",
                int(bool(n["connected"])), node=node)
        out.add("hotline_ami_events_total", "counter", "AMI events handled.", n["events"],
                node=node)
        out.add("hotline_ami_event_backlog", "gauge",
                "AMI events received and not yet handled (the service's lag).",
                f.backlogs.get(node), node=node)
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
    for q, v in f.queues.items():
        out.add("hotline_queue_waiting", "gauge", "Callers waiting.", v["waiting"], queue=q)
        out.add("hotline_queue_longest_wait_seconds", "gauge", "The longest wait now.",
                round(f.now - v["longest_since"], 1) if v["longest_since"] else 0, queue=q)
        out.add("hotline_queue_answered_total", "counter", "Calls answered.", v["answered"],
                queue=q)
        out.add("hotline_queue_abandoned_total", "counter", "Callers who hung up waiting.",
                v["abandoned"], queue=q)
        out.add("hotline_queue_service_level_ratio", "gauge",
                f"Share answered within {f.service_level_s} s.", v["service_level"], queue=q)
        out.add("hotline_queue_abandon_ratio", "gauge", "Share abandoned.", v["abandon_rate"],
                queue=q)
        out.add("hotline_queue_asa_seconds", "gauge", "Average speed of answer.", v["asa"],
                queue=q)
    for state, n in sorted(f.agent_states.items()):
        out.add("hotline_agents", "gauge", "Agents by state.", n, state=state)
    if f.transcription_jobs is not None:
        for state, n in f.transcription_jobs.items():
            out.add("hotline_transcription_jobs", "gauge", "Transcription jobs by state.", n,
                    state=state)
    return out.families()


class ServiceFigures(Collector):
    """The service's and the wallboard's figures, read when Prometheus scrapes. The
    transcription jobs are counted in Redis (awaited): ``exposition`` reads them first."""

    def __init__(self, service: Any, board: Any) -> None:
        self.service = service
        self.board = board
        self.transcription_jobs: Mapping[str, int] | None = None

    def figures(self) -> Figures:
        service, board = self.service, self.board
        return Figures(
            stats=service.stats(), started_at=service.started_at,
            backlogs={node: rt.ami._events.qsize() for node, rt in service.nodes.items()},
            queues=board.snapshot()["queues"], service_level_s=board.sl_s,
            agent_states=Counter(str(a.get("state", "unknown")) for a in board.agents.values()),
            transcription_jobs=self.transcription_jobs)

    def collect(self) -> Iterable[Metric]:
        return families(self.figures())


async def exposition(registry: CollectorRegistry, figures: ServiceFigures) -> bytes:
    """The registry in Prometheus's text format (prometheus_client.CONTENT_TYPE_LATEST)."""
    transcripts = getattr(figures.service, "transcripts", None)
    if transcripts is not None:
        figures.transcription_jobs = await transcripts.queue.counts()
    return generate_latest(registry)
