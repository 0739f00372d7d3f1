"""The pure part of surge rebalancing: figures, hysteresis, proposals and donor floors."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from common.config import SurgeSection
from queueing.surge.model import (
    Candidate,
    Hysteresis,
    Observed,
    donor_slack,
    figures,
    plan,
)

CFG = SurgeSection(target_sl=0.8, target_s=15, window_s=300, default_aht_s=180,
                   min_samples=3, default_floor=2, floors={"wuxi": 4}, max_per_move=10,
                   max_borrowed_per_city=10)


def fig(city: str, *, arrivals: int = 0, present: int = 0, idle: int = 0, waiting: int = 0,
        longest: float = 0.0, lent: int = 0, borrowed: int = 0):  # type: ignore[no-untyped-def]
    return figures(CFG, city=city, skill="general", queue=f"{city}-general", node="n",
                   observed=Observed(arrivals=arrivals, waiting=waiting,
                                     longest_wait_s=longest),
                   present=present, home=present - borrowed, idle=idle,
                   lent_out=[f"x{i}" for i in range(lent)],
                   borrowed_in=[f"b{i}" for i in range(borrowed)])


def agents(city: str, n: int, state: str = "ready", start: int = 0) -> list[Candidate]:
    return [Candidate(f"{city[:2]}{start + i}", f"{city}{i}", city, "n", 3, {"general": 3},
                      state) for i in range(n)]


def test_figures_forecast_from_erlang_c() -> None:
    # 100 calls in the 5-minute window (20/min), AHT 180 s: 60 Erlangs.
    f = fig("nanjing", arrivals=100, present=20, waiting=30, longest=240)
    assert f.traffic_erlangs == 60.0 and f.agents_needed > 60 and f.shortfall > 40
    assert f.pressure and not f.calm and f.forecast_sl == 0.0
    # Observed handle times replace the default once there are enough of them.
    g = figures(CFG, city="a", skill="general", queue="a-general", node="n",
                observed=Observed(arrivals=10, handle_times=[60, 60, 60],
                                  answered_waits=[1, 2, 30], abandoned=1),
                present=3, home=3, idle=1)
    assert g.aht_observed and g.aht_s == 60 and g.service_level == 0.5


def test_hysteresis_needs_sustained_pressure_and_sustained_calm() -> None:
    h = Hysteresis(enter_after_s=20, exit_after_s=60)
    t = 0.0
    # Pressure that comes and goes faster than 20 s never starts a surge.
    for i in range(20):
        assert h.update("q", pressure=i % 2 == 0, calm=i % 2 == 1, now=t) == "normal"
        t += 15
    for _ in range(3):
        h.update("q", pressure=True, calm=False, now=t)
        t += 10
    assert h.state["q"] == "surge"
    # Calm broken every 50 s: still a surge (no flapping); 60 s of calm ends it.
    for i in range(10):
        calm = i % 5 != 4
        assert h.update("q", pressure=not calm, calm=calm, now=t) == "surge"
        t += 10
    for _ in range(7):
        h.update("q", pressure=False, calm=True, now=t)
        t += 10
    assert h.state["q"] == "normal" and h.transitions == 2


def test_proposal_takes_from_the_city_with_most_slack_and_keeps_floors() -> None:
    target = fig("nanjing", arrivals=100, present=20, waiting=30, longest=240)
    donors = [fig("suzhou", arrivals=10, present=12, idle=8),  # needs ~8
              fig("wuxi", arrivals=0, present=5, idle=5),       # floor 4: lends 1
              fig("xuzhou", arrivals=0, present=2, idle=2)]     # floor 2: lends none
    cands = agents("suzhou", 12) + agents("wuxi", 5) + agents("xuzhou", 2)
    picks, notes = plan(CFG, target, donors, cands)
    by_city: dict[str, int] = {}
    for p in picks:
        by_city[p.from_city] = by_city.get(p.from_city, 0) + 1
    assert by_city.get("xuzhou", 0) == 0 and by_city.get("wuxi", 0) == 1
    assert by_city["suzhou"] == donor_slack(CFG, donors[0]) > 0
    assert any("xuzhou: no slack" in n for n in notes)


def test_proposal_prefers_idle_and_skilled_and_skips_lent_absent_unskilled() -> None:
    target = fig("nanjing", arrivals=50, present=2, waiting=5, longest=60)
    donors = [fig("suzhou", present=6, idle=3)]
    cands = [
        Candidate("1", "a", "suzhou", "n", 5, {"general": 5}, "on_call"),
        Candidate("2", "b", "suzhou", "n", 2, {"general": 2}, "ready"),
        Candidate("3", "c", "suzhou", "n", 4, {"general": 4}, "ready"),
        Candidate("4", "d", "suzhou", "n", 5, {"general": 5}, "ready", lent=True),
        Candidate("5", "e", "suzhou", "n", 5, {"general": 5}, "unavailable"),
        Candidate("6", "f", "suzhou", "n", 0, {"lang_en": 5}, "ready"),
    ]
    picks, _ = plan(CFG, target, donors, cands)
    # Free ones first, the most skilled first; the busy one last (it takes surge calls only
    # once its own call is over: a move never takes an agent off a call).
    assert donor_slack(CFG, donors[0]) == 4
    assert [p.agent_id for p in picks] == ["3", "2", "1"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 12), st.integers(0, 6)),
                min_size=1, max_size=5),
       st.integers(0, 200), st.integers(0, 30))
def test_no_proposal_ever_breaks_a_donor_floor(donor_specs, arrivals, present) -> None:  # type: ignore[no-untyped-def]
    target = fig("target", arrivals=arrivals, present=present, waiting=5, longest=100)
    donors, cands = [], []
    for i, (d_arr, d_present, d_lent) in enumerate(donor_specs):
        city = f"c{i}"
        lent = min(d_lent, d_present)
        donors.append(fig(city, arrivals=d_arr, present=d_present, idle=d_present, lent=lent))
        cands += agents(city, d_present, start=100 * i)
    picks, _ = plan(CFG, target, donors, cands)
    for d in donors:
        taken = sum(1 for p in picks if p.from_city == d.city)
        left = d.agents_home - len(d.lent_out) - taken
        if taken:
            assert left >= CFG.floor_of(d.city) and left >= d.agents_needed
    assert len(picks) <= CFG.max_per_move


def test_a_donor_keeps_the_agents_its_forecast_needs() -> None:
    # Quiet now (no arrivals in the window), but its half-hour forecast needs 5 of its 8.
    quiet = fig("suzhou", present=8, idle=8)
    expected_busy = figures(CFG, city="suzhou", skill="general", queue="suzhou-general",
                            node="n", observed=Observed(), present=8, home=8, idle=8,
                            forecast_needed=5)
    assert donor_slack(CFG, quiet) == 6  # floor 2
    assert donor_slack(CFG, expected_busy) == 3
    target = fig("nanjing", arrivals=100, present=20, waiting=30, longest=240)
    picks, _ = plan(CFG, target, [expected_busy], agents("suzhou", 8))
    assert len(picks) == 3
