"""The service's Prometheus registry and the timings observed where the work happens.

One ``Metrics`` per service (several services run in one test process, so never
prometheus_client's global registry): the composition root makes it and hands it to the
features, which observe into its histograms (``time.perf_counter`` around the work, one
``observe`` each, nothing else per event). A feature built without one observes into
``UNSERVED``, whose registry nobody scrapes. The figures the service already counts are read at
scrape time by a collector the web console attaches (agent_desk/metrics.py); the process's CPU,
memory and file descriptors come from prometheus_client's process and platform collectors.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, PlatformCollector, ProcessCollector
from prometheus_client.registry import Collector

# From a tenth of a millisecond (a routing decision from memory) to ten seconds (a database
# write held back).
FAST_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                0.5, 1.0, 2.5, 5.0, 10.0)
# Transcription of a call's recordings: seconds to minutes.
SLOW_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class Metrics:
    """The registry and the histograms the features observe into."""

    def __init__(self, *, process: bool = True) -> None:
        self.registry = CollectorRegistry()
        if process:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
        r = self.registry
        self.route_decision = Histogram(
            "hotline_route_decision_seconds",
            "Time from Asterisk's FastAGI route request to the routing answer.",
            registry=r, buckets=FAST_BUCKETS)
        self.ami_event = Histogram(
            "hotline_ami_event_handling_seconds", "Time handling one AMI event.",
            ["node"], registry=r, buckets=FAST_BUCKETS)
        self.ami_lag = Histogram(
            "hotline_ami_lag_seconds",
            "Time from an AMI event's arrival to the end of its handling.",
            ["node"], registry=r, buckets=FAST_BUCKETS)
        self.case_write = Histogram(
            "hotline_case_write_seconds",
            "Time writing one call's queued facts to its case (one transaction).",
            registry=r, buckets=FAST_BUCKETS)
        self.transcription = Histogram(
            "hotline_transcription_seconds",
            "Time transcribing one case's recordings (read, recognised, stored).",
            registry=r, buckets=SLOW_BUCKETS)
        self._attached: dict[str, Collector] = {}

    def attach(self, name: str, collector: Collector) -> None:
        """Serve ``collector`` (read at scrape time) under ``name``, in place of the one
        attached under that name before (a console app made again for the same service)."""
        old = self._attached.pop(name, None)
        if old is not None:
            self.registry.unregister(old)
        self.registry.register(collector)
        self._attached[name] = collector


UNSERVED = Metrics(process=False)
