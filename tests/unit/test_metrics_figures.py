"""The /metrics figures on plain data: the names, labels, help and types operators' dashboards
read, in prometheus_client's text format, which its own parser reads back."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agent_desk.metrics import Figures, families
from common.metrics import Metrics

STATS = {
    "nodes": {"node1": {"connected": True, "events": 120, "resyncs": 1, "malformed": 0,
                        "active_calls": 2, "cel_completed": 3}},
    "facts_applied": 40, "facts_duplicate": 2, "routes": 7, "route_fallbacks": 1,
    "transfers": {"calls": 0, "handovers": 0},
    "redis": {"up": True, "outages": 0, "losses": 0, "recoveries": 0},
}
QUEUES = {"nanjing-general": {"waiting": 1, "longest_since": 990.0, "answered": 5,
                              "abandoned": 1, "service_level": 0.8, "abandon_rate": 0.1,
                              "asa": 12.5}}


class Figured:
    def __init__(self, figures: Figures):
        self.figures = figures

    def collect(self):  # the Collector interface
        return families(self.figures)


def exposed(figures: Figures) -> str:
    registry = CollectorRegistry()
    registry.register(Figured(figures))
    return generate_latest(registry).decode()


def test_the_figures_keep_their_names_labels_and_types():
    text = exposed(Figures(stats=STATS, started_at=900.0, backlogs={"node1": 3}, queues=QUEUES,
                           service_level_s=20, agent_states={"idle": 2, "busy": 1},
                           transcription_jobs={"pending": 4, "done": 9}, now=1000.0))
    parsed = {f.name: f for f in text_string_to_metric_families(text)}
    lines = text.splitlines()
    assert "# TYPE hotline_ami_events_total counter" in lines
    assert "# HELP hotline_ami_events_total AMI events handled." in lines
    assert 'hotline_ami_events_total{node="node1"} 120.0' in lines
    assert 'hotline_ami_event_backlog{node="node1"} 3.0' in lines
    assert 'hotline_case_facts_total{result="applied"} 40.0' in lines
    assert 'hotline_case_facts_total{result="duplicate"} 2.0' in lines
    assert "hotline_uptime_seconds 100.0" in lines
    assert 'hotline_queue_longest_wait_seconds{queue="nanjing-general"} 10.0' in lines
    assert "# HELP hotline_queue_service_level_ratio Share answered within 20 s." in lines
    assert 'hotline_agents{state="busy"} 1.0' in lines
    assert 'hotline_transcription_jobs{state="pending"} 4.0' in lines
    # The parser names counters without "_total" (OpenMetrics); every family parses.
    assert parsed["hotline_ami_events"].type == "counter"
    assert parsed["hotline_queue_waiting"].type == "gauge"
    assert {s.labels["result"] for s in parsed["hotline_case_facts"].samples} == {
        "applied", "duplicate"}


def test_figures_not_there_are_left_out():
    stats = {**STATS, "redis": None}
    text = exposed(Figures(stats=stats, started_at=0, backlogs={}, queues={},
                           service_level_s=20, agent_states={}, transcription_jobs=None))
    assert "hotline_uptime_seconds 0.0" in text.splitlines()
    for absent in ("hotline_redis_up", "hotline_ami_event_backlog", "hotline_queue_",
                   "hotline_agents", "hotline_transcription_jobs"):
        assert absent not in text
    list(text_string_to_metric_families(text))


def test_a_services_registry_has_its_timings_and_the_process():
    a, b = Metrics(), Metrics()  # two services in one process: two registries
    a.route_decision.observe(0.0004)
    a.ami_event.labels("node1").observe(0.001)
    text = generate_latest(a.registry).decode()
    parsed = {f.name: f for f in text_string_to_metric_families(text)}
    count = {s.name: s.value for s in parsed["hotline_route_decision_seconds"].samples}
    assert count["hotline_route_decision_seconds_count"] == 1
    assert "process_cpu_seconds" in parsed and "python_info" in parsed
    other = generate_latest(b.registry).decode()
    assert "hotline_route_decision_seconds_count 0.0" in other.splitlines()


def test_a_collector_attached_again_replaces_the_first():
    m = Metrics(process=False)
    first = Figured(Figures(stats=STATS, started_at=0, backlogs={}, queues={},
                            service_level_s=20, agent_states={}))
    m.attach("service", first)
    m.attach("service", Figured(first.figures))
    text = generate_latest(m.registry).decode()
    assert text.count("# TYPE hotline_up gauge") == 1
