"""A scripted surge across three cities, with and without automatic rebalancing (多援一).

This is a SIMULATION (one-second steps, minutes of traffic in well under a second), not real
calls: running hundreds of real calls for an hour is too heavy for this machine. It drives the
same decision code the service runs — queueing.surge.model.figures (Erlang C forecast from observed
arrivals and handle times), Hysteresis and plan (donor slack, floors, limits) — over a
simulated contact center: Poisson arrivals per city, exponential handle times, callers who
abandon after an exponential patience, agents who answer the longest-waiting caller of the
queues they are in (a lent agent serves its home queue and the surging one). Both runs see
exactly the same callers (same seed).

Nanjing's arrival rate steps up 5x for 20 minutes. Prints JSON (per city: service level and
longest wait per minute, and a summary table) and writes a PNG plot next to --out.

    .venv/bin/python bench/surge_rebalance.py [--minutes 60] [--out bench/surge_rebalance.png]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.config import SurgeSection
from queueing.surge.model import Candidate, Hysteresis, Observed, figures, plan

CITIES = {  # agents, calls per minute before the surge
    "nanjing": (7, 2.0),
    "suzhou": (18, 3.0),
    "wuxi": (14, 2.0),
}
SURGE_CITY, SURGE_FACTOR = "nanjing", 5.0
AHT_S, PATIENCE_S = 120.0, 180.0
POLICY = SurgeSection(target_sl=0.8, target_s=15, window_s=300, default_aht_s=AHT_S,
                      min_samples=10, default_floor=3, borrow_penalty=4, enter_after_s=30,
                      exit_after_s=180, auto=True, max_borrowed_per_city=15, max_per_move=5,
                      interval_s=5)


@dataclass
class Caller:
    city: str
    arrive: float
    handle: float
    patience: float


@dataclass
class Agent:
    id: str
    city: str
    busy_until: float = 0.0
    lent_to: str | None = None


@dataclass
class CityLog:
    waits: list[tuple[float, float, bool]] = field(default_factory=list)  # (t, wait, answered)
    handles: list[tuple[float, float]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)


def callers(minutes: int, surge_from: int, surge_to: int, seed: int) -> list[Caller]:
    rng = random.Random(seed)
    out = []
    for city, (_, per_min) in CITIES.items():
        t = 0.0
        while True:
            rate = per_min / 60 * (SURGE_FACTOR if city == SURGE_CITY and
                                   surge_from * 60 <= t < surge_to * 60 else 1.0)
            t += rng.expovariate(rate)
            if t >= minutes * 60:
                break
            out.append(Caller(city, t, rng.expovariate(1 / AHT_S),
                              rng.expovariate(1 / PATIENCE_S)))
    out.sort(key=lambda c: c.arrive)
    return out


# One city's figures, minute by minute: service level (None before any call), longest wait,
# agents lent in.
PerMinute = dict[str, list[float | None]]


class RunResult(TypedDict):
    per_minute: dict[str, PerMinute]
    moves: int
    returns: int
    surge_transitions: int
    logs: dict[str, CityLog]


def run(calls: list[Caller], minutes: int, rebalance: bool) -> RunResult:
    agents = [Agent(f"{city[:2]}{i:02d}", city) for city, (n, _) in CITIES.items()
              for i in range(n)]
    queues: dict[str, list[Caller]] = {c: [] for c in CITIES}
    logs = {c: CityLog() for c in CITIES}
    hyst = Hysteresis(POLICY.enter_after_s, POLICY.exit_after_s)
    per_min: dict[str, PerMinute] = {c: {"sl": [], "longest_wait_s": [], "lent_in": []}
                                      for c in CITIES}
    minute_waits: dict[str, list[tuple[float, bool]]] = {c: [] for c in CITIES}
    recent: dict[str, list[list[tuple[float, bool]]]] = {c: [] for c in CITIES}
    moves = returns = 0
    i = 0
    for t in range(minutes * 60):
        while i < len(calls) and calls[i].arrive <= t:
            queues[calls[i].city].append(calls[i])
            logs[calls[i].city].arrivals.append(calls[i].arrive)
            i += 1
        for city, q in queues.items():  # callers who give up
            keep = []
            for c in q:
                if t - c.arrive >= c.patience:
                    logs[city].waits.append((t, t - c.arrive, False))
                    minute_waits[city].append((t - c.arrive, False))
                else:
                    keep.append(c)
            queues[city] = keep
        # Home agents first (a lent agent has penalty borrow_penalty in the surging queue).
        for a in sorted(agents, key=lambda a: a.lent_to is not None):
            if a.busy_until > t:
                continue
            mine = [a.city] + ([a.lent_to] if a.lent_to else [])
            waiting = [(queues[c][0].arrive, c) for c in mine if queues[c]]
            if not waiting:
                continue
            _, city = min(waiting)
            c = queues[city].pop(0)
            a.busy_until = t + c.handle
            logs[city].waits.append((t, t - c.arrive, True))
            logs[city].handles.append((t + c.handle, c.handle))
            minute_waits[city].append((t - c.arrive, True))
        if rebalance and t % int(POLICY.interval_s) == 0:
            moves_now, returns_now = policy(t, agents, queues, logs, hyst)
            moves += moves_now
            returns += returns_now
        if t % 60 == 59:
            for city in CITIES:
                # Service level over the last 5 minutes (one minute holds too few calls).
                recent[city].append(minute_waits[city])
                w = [x for m in recent[city][-5:] for x in m]
                ok = sum(1 for wait, answered in w if answered and wait <= POLICY.target_s)
                per_min[city]["sl"].append(round(ok / len(w), 3) if w else None)
                q = queues[city]
                per_min[city]["longest_wait_s"].append(round(t - q[0].arrive, 1) if q else 0.0)
                per_min[city]["lent_in"].append(sum(1 for a in agents if a.lent_to == city))
                minute_waits[city] = []
    return {"per_minute": per_min, "moves": moves, "returns": returns,
            "surge_transitions": hyst.transitions,
            "logs": logs}


def policy(t: float, agents: list[Agent], queues: dict[str, list[Caller]],
           logs: dict[str, CityLog], hyst: Hysteresis) -> tuple[int, int]:
    """What SurgeManager.tick does, on the simulation's figures."""
    lo = t - POLICY.window_s
    figs = {}
    for city in CITIES:
        lg = logs[city]
        home = [a for a in agents if a.city == city]
        lent_in = [a for a in agents if a.lent_to == city]
        here = home + lent_in
        obs = Observed(arrivals=sum(1 for x in lg.arrivals if x >= lo),
                       answered_waits=[w for (tt, w, ans) in lg.waits if tt >= lo and ans],
                       abandoned=sum(1 for (tt, _, ans) in lg.waits if tt >= lo and not ans),
                       handle_times=[h for (tt, h) in lg.handles if lo <= tt <= t],
                       waiting=len(queues[city]),
                       longest_wait_s=(t - queues[city][0].arrive) if queues[city] else 0.0)
        figs[city] = figures(POLICY, city=city, skill="general", queue=f"{city}-general",
                             node=city, observed=obs, present=len(here), home=len(home),
                             idle=sum(1 for a in here if a.busy_until <= t),
                             borrowed_in=[a.id for a in lent_in],
                             lent_out=[a.id for a in home if a.lent_to])
    moved = returned = 0
    for city, f in figs.items():
        state = hyst.update(city, pressure=f.pressure, calm=f.calm, now=t)
        if state == "normal" and f.borrowed_in and f.calm and not f.pressure:
            for a in agents:
                if a.lent_to == city:
                    a.lent_to = None  # an agent on a surge call finishes it first (it is
                    returned += 1     # only removed from the queue)
        elif state == "surge" and (f.shortfall > 0 or f.pressure):
            donors = [d for d in figs.values() if d.city != city]
            cands = [Candidate(a.id, a.id, a.city, a.city, 3, {"general": 3},
                               "ready" if a.busy_until <= t else "on_call",
                               lent=a.lent_to is not None) for a in agents]
            picks, _ = plan(POLICY, f, donors, cands)
            for p in picks:
                next(a for a in agents if a.id == p.agent_id).lent_to = city
                moved += 1
    return moved, returned


def summary(result: RunResult, surge_from: int,
            surge_to: int) -> dict[str, dict[str, dict[str, float | None]]]:
    out = {}
    for city, lg in result["logs"].items():
        row = {}
        for name, (a, b) in {"before": (0, surge_from), "surge": (surge_from, surge_to),
                             "after": (surge_to, 10**9)}.items():
            w = [(wait, ans) for (t, wait, ans) in lg.waits if a * 60 <= t < b * 60]
            ok = sum(1 for wait, ans in w if ans and wait <= POLICY.target_s)
            row[name] = {"offered": len(w), "service_level": round(ok / len(w), 3) if w else None,
                         "abandoned": sum(1 for _, ans in w if not ans),
                         "longest_wait_s": round(max((x for x, _ in w), default=0.0), 1)}
        out[city] = row
    return out


def plot(results: dict[str, RunResult], path: Path, surge: tuple[int, int]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(11, 10), sharex=True)
    colors = {"nanjing": "tab:red", "suzhou": "tab:blue", "wuxi": "tab:green"}
    for mode, style in (("without", ":"), ("with", "-")):
        pm = results[mode]["per_minute"]
        for city in CITIES:
            xs = list(range(1, len(pm[city]["sl"]) + 1))
            sl = [None if v is None else v * 100 for v in pm[city]["sl"]]
            axes[0].plot(xs, sl, style, color=colors[city], label=f"{city} {mode} rebalancing")
            axes[1].plot(xs, pm[city]["longest_wait_s"], style, color=colors[city],
                         label=f"{city} {mode}")
            if mode == "with":
                axes[2].plot(xs, pm[city]["lent_in"], style, color=colors[city],
                             label=f"agents lent to {city}")
    for ax in axes:
        ax.axvspan(*surge, color="0.9")
        ax.grid(True, alpha=0.3)
    axes[0].axhline(POLICY.target_sl * 100, color="k", lw=0.8)
    axes[0].set_ylabel(f"service level % ({POLICY.target_s} s), last 5 min")
    axes[1].set_ylabel("longest wait now (s)")
    axes[2].set_ylabel("agents lent in")
    axes[2].set_xlabel("minute (grey: Nanjing's arrivals x5)")
    axes[0].legend(fontsize=7, ncol=2)
    axes[1].legend(fontsize=7, ncol=2)
    axes[2].legend(fontsize=7)
    fig.suptitle("Surge across cities: simulation with vs without automatic rebalancing")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=int, default=60)
    ap.add_argument("--surge-from", type=int, default=15)
    ap.add_argument("--surge-to", type=int, default=35)
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".png"))
    args = ap.parse_args()
    started = time.perf_counter()
    calls = callers(args.minutes, args.surge_from, args.surge_to, args.seed)
    results = {"without": run(calls, args.minutes, False),
               "with": run(calls, args.minutes, True)}
    plot(results, args.out, (args.surge_from, args.surge_to))
    table = {mode: summary(r, args.surge_from, args.surge_to) for mode, r in results.items()}
    print(json.dumps({
        "kind": "simulation (same decision code as the service: queueing.surge.model)",
        "cities": {c: {"agents": n, "calls_per_min": r} for c, (n, r) in CITIES.items()},
        "surge": {"city": SURGE_CITY, "factor": SURGE_FACTOR,
                  "minutes": [args.surge_from, args.surge_to]},
        "aht_s": AHT_S, "patience_s": PATIENCE_S, "callers": len(calls),
        "policy": POLICY.model_dump(),
        "summary": table,
        "moves": {m: {"lent": r["moves"], "returned": r["returns"],
                      "surge_transitions": r["surge_transitions"]}
                  for m, r in results.items()},
        "per_minute": {m: r["per_minute"] for m, r in results.items()},
        "plot": str(args.out), "seconds": round(time.perf_counter() - started, 2),
    }, ensure_ascii=False))


if __name__ == "__main__":
    main()
