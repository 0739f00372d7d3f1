"""Surges across cities (多援一): the pure part. Figures of a city's queue, the surge state
machine with hysteresis, and the proposal of which agents to borrow from which cities. No I/O:
queueing/surge/manager.py feeds these from Redis and AMI, bench/surge_rebalance.py from a
simulation, so both exercise the same decisions."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from common.config import SurgeSection
from common.errors import DomainError
from queueing.surge.erlang import agents_needed, service_level

# Agents' live states (telephony/live/state.py) that count as present: signed in and reachable.
PRESENT_STATES = frozenset({"ready", "on_call", "busy", "ringing", "on_hold", "unknown"})
IDLE_STATES = frozenset({"ready", "unknown"})


class SurgeError(DomainError):
    """A refused surge action; ``code`` is conflict, not_found, floor, busy or unavailable
    (the console maps conflict/busy/floor to 409, not_found to 404)."""


@dataclass
class Observed:
    """What was measured for one queue over the window."""

    arrivals: int = 0
    answered_waits: list[float] = field(default_factory=list)
    abandoned: int = 0
    handle_times: list[float] = field(default_factory=list)
    waiting: int = 0
    longest_wait_s: float = 0.0


@dataclass
class QueueFigures:
    city: str
    skill: str
    queue: str
    node: str
    window_s: float
    arrivals_per_min: float
    waiting: int
    longest_wait_s: float
    answered: int
    abandoned: int
    service_level: float | None  # answered within target / (answered + abandoned)
    aht_s: float
    aht_observed: bool
    traffic_erlangs: float
    agents_needed: int
    agents_present: int  # home and borrowed agents signed in and reachable
    agents_home: int  # the city's own agents present (lent ones included)
    agents_idle: int
    borrowed_in: list[str] = field(default_factory=list)
    lent_out: list[str] = field(default_factory=list)
    forecast_sl: float = 1.0  # Erlang C service level with the agents present
    # Agents the staffing forecast needs in this half-hour (queueing/surge/forecast.py):
    # expected from the same weekday of the last weeks, not from the last minutes.
    forecast_needed: int = 0
    state: str = "normal"  # normal | surge
    since: float = 0.0
    pressure: bool = False
    calm: bool = True

    @property
    def shortfall(self) -> int:
        return max(0, self.agents_needed - self.agents_present)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shortfall"] = self.shortfall
        return d


def figures(cfg: SurgeSection, *, city: str, skill: str, queue: str, node: str,
            observed: Observed, present: int, home: int, idle: int,
            borrowed_in: list[str] | None = None, lent_out: list[str] | None = None,
            forecast_needed: int = 0) -> QueueFigures:
    """A queue's figures and its Erlang C forecast from what was observed."""
    o = observed
    window = float(cfg.window_s)
    rate = o.arrivals / window
    enough = len(o.handle_times) >= cfg.min_samples
    aht = (sum(o.handle_times) / len(o.handle_times)) if enough else cfg.default_aht_s
    finished = len(o.answered_waits) + o.abandoned
    sl = (sum(1 for w in o.answered_waits if w <= cfg.target_s) / finished) if finished else None
    need = agents_needed(rate, aht, cfg.target_sl, cfg.target_s) if rate > 0 else 0
    traffic = rate * aht
    f = QueueFigures(
        city=city, skill=skill, queue=queue, node=node, window_s=window,
        arrivals_per_min=round(rate * 60, 3), waiting=o.waiting,
        longest_wait_s=round(o.longest_wait_s, 1), answered=len(o.answered_waits),
        abandoned=o.abandoned, service_level=None if sl is None else round(sl, 4),
        aht_s=round(aht, 1), aht_observed=enough, traffic_erlangs=round(traffic, 3),
        agents_needed=need, agents_present=present, agents_home=home, agents_idle=idle,
        borrowed_in=list(borrowed_in or []), lent_out=list(lent_out or []),
        forecast_sl=round(service_level(present, traffic, aht, cfg.target_s), 4),
        forecast_needed=forecast_needed,
    )
    f.pressure = under_pressure(cfg, f)
    f.calm = is_calm(cfg, f)
    return f


def under_pressure(cfg: SurgeSection, f: QueueFigures) -> bool:
    """More agents needed than present, or callers waiting past the target with nobody
    free."""
    if f.agents_needed > f.agents_present and (f.waiting > 0 or f.agents_idle == 0):
        return True
    return f.waiting > 0 and f.longest_wait_s > cfg.target_s and f.agents_idle == 0


def is_calm(cfg: SurgeSection, f: QueueFigures) -> bool:
    """The city's own agents (without those it borrowed) would meet the target again."""
    home_here = f.agents_present - len(f.borrowed_in)
    return (f.agents_needed <= home_here and f.longest_wait_s <= cfg.target_s)


class Hysteresis:
    """normal → surge after ``enter_after_s`` of continuous pressure; surge → normal after
    ``exit_after_s`` of continuous calm. Anything in between keeps the state: no flapping."""

    def __init__(self, enter_after_s: float, exit_after_s: float):
        self.enter_after_s = enter_after_s
        self.exit_after_s = exit_after_s
        self.state: dict[str, str] = {}
        self.since: dict[str, float] = {}
        self._pressure_from: dict[str, float] = {}
        self._calm_from: dict[str, float] = {}
        self.transitions = 0

    def update(self, key: str, *, pressure: bool, calm: bool, now: float) -> str:
        state = self.state.get(key, "normal")
        if state == "normal":
            self._calm_from.pop(key, None)
            if pressure:
                start = self._pressure_from.setdefault(key, now)
                if now - start >= self.enter_after_s:
                    state = "surge"
            else:
                self._pressure_from.pop(key, None)
        else:
            self._pressure_from.pop(key, None)
            if calm and not pressure:
                start = self._calm_from.setdefault(key, now)
                if now - start >= self.exit_after_s:
                    state = "normal"
            else:
                self._calm_from.pop(key, None)
        self._set(key, state, now)
        return state

    def force(self, key: str, state: str, now: float) -> None:
        """A supervisor's move: the queue counts as surging (its calm timer starts again)."""
        self._pressure_from.pop(key, None)
        self._calm_from.pop(key, None)
        self._set(key, state, now)

    def _set(self, key: str, state: str, now: float) -> None:
        if state != self.state.get(key, "normal"):
            self.transitions += 1
            self.since[key] = now
        self.state[key] = state
        self.since.setdefault(key, now)


@dataclass(frozen=True)
class Candidate:
    """An agent who might be lent."""

    agent_id: str
    name: str
    city: str
    node: str
    level: int  # of the surging queue's skill
    skills: dict[str, int]
    state: str  # live state (telephony/live/state.py)
    lent: bool = False

    @property
    def present(self) -> bool:
        return self.state in PRESENT_STATES

    @property
    def idle(self) -> bool:
        return self.state in IDLE_STATES


@dataclass
class Pick:
    agent_id: str
    name: str
    from_city: str
    from_node: str
    level: int
    skills: dict[str, int]
    state: str


def donor_slack(cfg: SurgeSection, donor: QueueFigures) -> int:
    """How many agents a city can lend and still meet its own target and floor: what its
    load needs now, or what its forecast needs in this half-hour, whichever is more."""
    keep = max(cfg.floor_of(donor.city), donor.agents_needed, donor.forecast_needed)
    available = donor.agents_home - len(donor.lent_out)
    return max(0, available - keep)


def plan(cfg: SurgeSection, target: QueueFigures, donors: list[QueueFigures],
         candidates: list[Candidate], *, limit: int | None = None, count: int | None = None
         ) -> tuple[list[Pick], list[str]]:
    """Which agents to borrow for ``target``, from which cities, and why not more.

    Never names a lent agent, an agent without the skill or not present, and never takes a
    donor below its floor or below the agents its own load needs (Erlang C)."""
    notes: list[str] = []
    want = target.shortfall if count is None else count  # a supervisor may ask for N
    if want == 0 and target.pressure:
        want = 1  # waiting past the target with nobody free: one more helps
    room = cfg.max_borrowed_per_city - len(target.borrowed_in)
    cap = min(cfg.max_per_move if limit is None else limit, room)
    if want > cap:
        notes.append(f"needs {want} more agents; limited to {max(cap, 0)} by the surge limits")
    want = max(0, min(want, cap))
    picks: list[Pick] = []
    if want == 0:
        return picks, notes
    slack = {d.city: donor_slack(cfg, d) for d in donors if d.city != target.city}
    order = sorted(slack, key=lambda c: (-slack[c], c))
    for city in order:
        if len(picks) >= want:
            break
        if slack[city] <= 0:
            notes.append(f"{city}: no slack (floor {cfg.floor_of(city)})")
            continue
        pool = [c for c in candidates if c.city == city and c.level > 0 and c.present
                and not c.lent]
        # Free agents first, then the most skilled.
        pool.sort(key=lambda c: (not c.idle, -c.level, c.agent_id))
        for c in pool[: min(slack[city], want - len(picks))]:
            picks.append(Pick(c.agent_id, c.name, c.city, c.node, c.level, dict(c.skills),
                              c.state))
    if len(picks) < want:
        notes.append(f"only {len(picks)} of {want} agents available in other cities")
    return picks, notes


def projected(cfg: SurgeSection, f: QueueFigures, delta_agents: int) -> dict[str, Any]:
    """The queue's forecast with ``delta_agents`` more (or fewer) agents."""
    n = max(0, f.agents_present + delta_agents)
    return {"agents_present": n, "agents_needed": f.agents_needed,
            "forecast_sl": round(service_level(n, f.traffic_erlangs, f.aht_s, cfg.target_s), 4)}
