"""The insight room's logic: counting new cases' words, the hot-topic pass (counts against
their baselines, one alert per burst), acknowledging and merging a burst, training the
classifier on confirmed cases and suggesting a 事项 and department on a case's form.

CPU work (segmenting texts, training) runs in a thread, off the event loop the service
shares with call routing. Collaborators come in as arguments: the case loop (merging,
departments), ``publish`` (the wallboard's feed) and ``notify`` (the webhook outbox).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from agent_desk.insight.classifier import (
    Guess,
    KeywordRules,
    NaiveBayes,
    accuracy,
    held_back,
    load_synonyms,
)
from agent_desk.insight.detector import (
    KEYWORD,
    MATTER,
    OpenAlert,
    Plan,
    Rule,
    Signal,
    decide,
    plan,
)
from agent_desk.insight.models import ClassifierModel, HotAlert, HotAlertCase
from agent_desk.insight.store import CaseText, Counted, InsightStore
from agent_desk.insight.text import Segmenter, clean, features, tokens, topic_words
from cases.loop.models import Department
from cases.loop.states import Actor as LoopActor
from cases.loop.states import Command
from cases.loop.store import Details
from cases.loop.taxonomy import Taxonomy
from cases.models import Case
from common.config import InsightSection
from common.db import utcnow
from common.errors import DomainError

log = logging.getLogger(__name__)

Publish = Callable[[str, dict[str, Any]], Awaitable[None]]
HOT_TOPIC_OPENED = "hot_topic.opened"


class Notify(Protocol):
    """Tells a department by webhook (the webhook room's outbox, cases/loop/outbox.py
    ``WebhookOutbox.tell``), inside the transaction that opens the alert: the notice is
    written if and only if the alert is. The payload holds no personal data."""

    async def __call__(self, department_id: str, event: str, payload: dict[str, Any], *,
                       session: AsyncSession | None = None) -> None: ...
MODEL_CHECK = timedelta(seconds=60)  # how often the suggestion looks for a newer model
WORD_SAMPLE = 20  # cases read to name a hot word
UNSURE = 0.3  # below this the model defers to the keyword rules
WORD_RETRY = timedelta(minutes=10)  # a hot word not found in its cases' texts (yet)


class Loop(Protocol):
    """The case loop (cases/loop/store.py CaseLoop), as this room uses it."""

    @property
    def taxonomy(self) -> Taxonomy: ...

    def district_name(self, city: str | None, district: str | None) -> str: ...

    async def act(self, number: str, actor: LoopActor, cmd: Command,
                  details: Details | None = None, *, visible: Any = None,
                  idempotency_key: str | None = None) -> dict[str, Any]: ...
    async def suggested_department(self, matter: str | None, city: str | None
                                   ) -> str | None: ...
    async def departments(self, *, city: str | None = None, active_only: bool = True
                          ) -> list[Department]: ...


def rule_of(section: InsightSection) -> Rule:
    return Rule(p_alert=section.p_alert, p_clear=section.p_clear,
                min_count=section.min_count, min_expected=section.min_expected,
                overlap_share=section.overlap_share,
                cooldown=timedelta(minutes=section.cooldown_minutes))


def combine(g: Guess, ruled: Guess | None) -> tuple[Guess | None, str]:
    """The model's guess, unless it is unsure and the rules have one: a text unlike anything
    learnt (a 事项 no confirmed case had yet) is better served by the rules."""
    if g.confidence >= UNSURE or ruled is None:
        return g, "model"
    return ruled, "rules"


def iso(v: datetime | None) -> str | None:
    return v.astimezone(UTC).isoformat() if v else None


@dataclass(frozen=True)
class PassReport:
    counted: int
    signals: int
    hot: int
    opened: list[int]
    closed: list[int]


@dataclass(frozen=True)
class TrainReport:
    model_id: int | None
    cases: int
    held_back: int
    accuracy: float | None
    rules_accuracy: float | None
    active: bool
    reason: str = ""


class Insight:
    def __init__(self, store: InsightStore, loop: Loop, section: InsightSection, *,
                 publish: Publish | None = None, notify: Notify | None = None,
                 clock: Callable[[], datetime] = utcnow,
                 segment: Callable[[str], list[str]] | None = None,
                 city_names: dict[str, str] | None = None):
        self.store = store
        self.loop = loop
        self.section = section
        self.rule = rule_of(section)
        self.taxonomy = loop.taxonomy
        self.rules = KeywordRules(self.taxonomy, load_synonyms())
        self.segmenter = Segmenter(self.rules.vocabulary())
        # What segments the cleaned texts (tests pass a wrapper to see what it is given).
        self.segment: Callable[[str], list[str]] = segment or self.segmenter
        self.publish = publish
        self.notify = notify
        self.clock = clock
        self.hash = store.personal.term_hash
        self._words: dict[str, str] = {}  # keyword hash -> the word, once found
        self._tried: dict[str, datetime] = {}  # when a word was last looked for
        self._model: tuple[int, NaiveBayes] | None = None
        self._model_checked: datetime | None = None
        self.passes = 0
        self.city_names = dict(city_names or {})

    @property
    def window(self) -> timedelta:
        return timedelta(minutes=self.section.window_minutes)

    @property
    def horizon(self) -> timedelta:
        """How far back counts are needed: the baseline's weeks and one window."""
        return timedelta(weeks=self.section.baseline_weeks) + self.window + timedelta(hours=1)

    @property
    def recheck(self) -> timedelta:
        """How far back a case's grown text (a form saved later, a transcript finished) is
        counted again: what the current window needs; later edits are left out."""
        return max(timedelta(hours=2), 2 * self.window)

    # -- counting words ---------------------------------------------------------------------

    def _count(self, texts: Sequence[CaseText]) -> list[Counted]:
        out = []
        cap = self.section.max_terms_per_case
        for t in texts:
            words = topic_words(tokens(t.text, self.segment), self.segmenter) if t.text \
                else set()
            terms = frozenset(sorted(self.hash(w) for w in words)[:cap])
            out.append(Counted(t.case_id, t.city, t.at, terms, t.form_version, t.transcript))
        return out

    async def count_new(self, now: datetime, *, max_batches: int = 50) -> int:
        """Count the words of new cases (and of cases whose text grew)."""
        if not self.section.keywords:
            return 0
        done = 0
        for _ in range(max_batches):
            texts = await self.store.to_count(now, self.horizon, self.section.index_batch,
                                              recheck=self.recheck)
            if not texts:
                break
            counted = await asyncio.to_thread(self._count, texts)
            try:
                await self.store.save_counted(counted, now)
            except IntegrityError:
                log.info("another process counted these cases first")
                break
            done += len(texts)
            if len(texts) < self.section.index_batch:
                break
        return done

    # -- the hot-topic pass -----------------------------------------------------------------

    async def signals(self, now: datetime) -> tuple[list[Signal], Rule]:
        """Every series with enough cases in the window, tested against its baseline."""
        start, r, weeks = now - self.window, self.rule, self.section.baseline_weeks
        weeks_back = [timedelta(weeks=k) for k in range(1, weeks + 1)]

        async def live(kind: str) -> list[timedelta]:
            return [d for d in weeks_back if await self.store.live(kind, start - d, now - d)]

        out: list[Signal] = []
        cur = await self.store.matter_window(start, now, r.min_count)
        kw = await self.store.keyword_window(start, now, r.min_count) \
            if self.section.keywords else {}
        r = self.pass_rule(len(cur) + len(kw))
        if cur:
            shifts = await live(MATTER)
            matters = {m for (_c, _d, m), _ in cur.values()}
            base = [await self.store.matter_counts(start - d, now - d, matters) for d in shifts]
            for key, ((city, district, matter), cases) in cur.items():
                v = decide(len(cases), [b.get(key, 0) for b in base], r)
                out.append(Signal(MATTER, key, v, frozenset(cases), city, district, matter))
        if kw:
            shifts = await live(KEYWORD)
            terms = {t for (_c, t), _ in kw.values()}
            base = [await self.store.keyword_counts(start - d, now - d, terms)
                    for d in shifts]
            for key, ((city, term), cases) in kw.items():
                v = decide(len(cases), [b.get(key, 0) for b in base], r)
                out.append(Signal(KEYWORD, key, v, frozenset(cases), city, term=term))
        return out, r

    def pass_rule(self, series: int) -> Rule:
        """The rule for a pass testing ``series`` series: ``p_alert`` for the whole pass when
        ``per_pass`` (Bonferroni), so many series do not make alerts by chance."""
        if not self.section.per_pass or series <= 1:
            return self.rule
        return replace(self.rule, p_alert=self.rule.p_alert / series)

    async def detect(self, now: datetime | None = None) -> PassReport:
        now = now or self.clock()
        sigs, rule = await self.signals(now)
        alerts = await self.store.open_alerts()
        the_plan = plan(sigs, [OpenAlert(a.id, {a.series, *(d["key"] for d in a.signals or [])},
                                         cases, a.last_warm_at) for a, cases in alerts],
                        now, rule)
        words = await self._name_words(the_plan)
        try:
            opened, closed = await self.store.apply(
                the_plan, now, words, notify=self._announce if self.notify else None)
        except IntegrityError:
            # Another process opened the same series' alert first: this pass joins it next.
            log.info("hot-topic alert opened elsewhere meanwhile")
            opened, closed = [], []
        changed = bool(opened or closed or any(b.added for b in the_plan.bursts))
        if changed:
            await self.announce_board()
        for alert_id in opened:
            log.warning("hot topic", extra={"alert": alert_id})
        return PassReport(0, len(sigs), sum(1 for s in sigs if s.verdict.hot), opened, closed)

    async def run_once(self, now: datetime | None = None) -> PassReport:
        """One pass of the worker: count new cases' words, test the windows, prune."""
        now = now or self.clock()
        counted = await self.count_new(now)
        report = await self.detect(now)
        await self.store.prune_terms(now - self.horizon)
        self.passes += 1
        return PassReport(counted, report.signals, report.hot, report.opened, report.closed)

    def _find_words(self, texts: Sequence[CaseText], wanted: set[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for t in texts:
            for w in topic_words(tokens(t.text, self.segment), self.segmenter):
                h = self.hash(w)
                if h in wanted and h not in found:
                    found[h] = w
        return found

    async def _name_words(self, p: Plan) -> dict[str, str]:
        """The clear word of each hot keyword in an alert: found again in a few of the
        burst's own cases (the hash is all that is stored)."""
        now = self.clock()
        for b in p.bursts:
            for s in b.signals:
                if s.kind != KEYWORD or not s.term or s.term in self._words:
                    continue
                tried = self._tried.get(s.term)
                if tried is not None and now - tried < WORD_RETRY:
                    continue
                self._tried[s.term] = now
                texts = await self.store.texts_of(sorted(s.cases)[:WORD_SAMPLE])
                self._words.update(await asyncio.to_thread(self._find_words, texts, {s.term}))
        if len(self._words) > 50_000:
            self._words.clear()
        if len(self._tried) > 50_000:
            self._tried.clear()
        return dict(self._words)

    async def _announce(self, session: AsyncSession, alert: HotAlert) -> None:
        """A new alert to the departments told of hot topics, and to the 事项's own."""
        assert self.notify is not None
        told = set(self.section.notify_departments)
        if self.section.notify_matter_department and alert.matter:
            own = await self.loop.suggested_department(alert.matter, alert.city)
            if own:
                told.add(own)
        if not told:
            return
        numbers = list((await session.execute(
            select(Case.number).join(HotAlertCase, HotAlertCase.case_id == Case.id)
            .where(HotAlertCase.alert_id == alert.id).order_by(Case.id).limit(200))).scalars())
        payload = {**self.view(alert), "case_numbers": numbers}
        for department in sorted(told):
            await self.notify(department, HOT_TOPIC_OPENED, payload, session=session)

    async def announce_board(self) -> None:
        """The open alerts to every wallboard (the feed's ``hot_topics`` message)."""
        if self.publish is None:
            return
        alerts = await self.store.alerts(city=None, status="open", limit=50)
        try:
            await self.publish("hot_topics", {"alerts": [self.view(a) for a in alerts]})
        except Exception:  # the board misses one update; the next pass sends it again
            log.warning("hot topics not published", exc_info=True)

    # -- supervisors ------------------------------------------------------------------------

    def view(self, a: HotAlert) -> dict[str, Any]:
        name = self.taxonomy.path_names
        return {
            "id": a.id, "kind": a.kind, "city": a.city,
            "city_name": self.city_names.get(a.city or "", a.city), "district": a.district,
            "district_name": self.loop.district_name(a.city, a.district) or None,
            "matter": a.matter, "matter_name": name(a.matter) if a.matter else None,
            "term": a.term, "observed": a.observed, "expected": round(a.expected, 2),
            "p_value": a.p_value, "peak": a.peak, "cases": a.cases,
            "opened_at": iso(a.opened_at), "last_warm_at": iso(a.last_warm_at),
            "closed_at": iso(a.closed_at), "open": a.closed_at is None,
            "acknowledged_by": a.acknowledged_by, "acknowledged_at": iso(a.acknowledged_at),
            "merged_into": a.merged_into, "merged_by": a.merged_by,
            "merged_at": iso(a.merged_at),
            "signals": [{"kind": d.get("kind"), "district": d.get("district"),
                         "matter": d.get("matter"),
                         "matter_name": name(d["matter"]) if d.get("matter") else None,
                         "term": d.get("term"), "observed": d.get("observed"),
                         "expected": d.get("expected"), "p": d.get("p"),
                         "peak": d.get("peak")} for d in a.signals or []],
        }

    def _cases_view(self, cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**c, "at": iso(c["at"]),
                 "matter_name": self.taxonomy.path_names(c["matter"]) if c["matter"] else None,
                 "district_name": self.loop.district_name(c["city"], c["district"]) or None}
                for c in cases]

    async def alerts(self, *, city: str | None, visible: Any, status: str = "open",
                     limit: int = 50) -> list[dict[str, Any]]:
        found = await self.store.alerts(city=city, status=status, limit=limit)
        cases = await self.store.alert_cases([a.id for a in found], visible)
        return [{**self.view(a), "case_list": self._cases_view(cases[a.id])} for a in found]

    async def alert(self, alert_id: int, *, city: str | None, visible: Any
                    ) -> dict[str, Any]:
        a = await self.store.alert(alert_id, city)
        if a is None:
            raise DomainError("not_found", f"no alert {alert_id}")
        cases = await self.store.alert_cases([a.id], visible)
        return {**self.view(a), "case_list": self._cases_view(cases[a.id])}

    async def acknowledge(self, alert_id: int, *, user: str, city: str | None
                          ) -> dict[str, Any]:
        if await self.store.alert(alert_id, city) is None:
            raise DomainError("not_found", f"no alert {alert_id}")
        a = await self.store.acknowledge(alert_id, user, self.clock())
        assert a is not None
        await self.announce_board()
        return self.view(a)

    async def merge(self, alert_id: int, actor: LoopActor, *, city: str | None,
                    visible: Any, into: str | None = None) -> dict[str, Any]:
        """并单: every case of the burst the asker may see, merged into one (the earliest
        still open, unless ``into`` names another of them). A case that cannot be merged
        (already dispatched, say) is left as it is and listed with the reason."""
        a = await self.store.alert(alert_id, city)
        if a is None:
            raise DomainError("not_found", f"no alert {alert_id}")
        cases = [c for c in (await self.store.alert_cases([a.id], visible))[a.id]
                 if not c["merged"]]
        if into is None:
            target = next((c["number"] for c in cases if c["state"] != "merged"), None)
        else:
            target = into if any(c["number"] == into for c in cases) else None
            if target is None:
                raise DomainError("invalid", f"into: {into} is not an open case of this alert")
        if target is None or len(cases) < 2:
            raise DomainError("conflict", "the alert has no two open cases to merge")
        merged, skipped = [], []
        for c in cases:
            if c["number"] == target:
                continue
            try:
                await self.loop.act(c["number"], actor, Command("merge"),
                                    Details(merge_into=target), visible=visible,
                                    idempotency_key=f"insight:{a.id}:merge")
                merged.append(c["number"])
            except DomainError as exc:
                skipped.append({"number": c["number"], "error": exc.code,
                                "message": exc.message})
        await self.store.merged(a.id, target, actor.user, self.clock())
        await self.announce_board()
        return {"alert": a.id, "into": target, "merged": merged, "skipped": skipped}

    # -- the classifier ---------------------------------------------------------------------

    def _featurize(self, texts: Sequence[CaseText]) -> tuple[list[Any], list[str]]:
        feats, cleaned = [], []
        for t in texts:
            feats.append(features(tokens(t.text, self.segment), self.hash))
            cleaned.append(clean(t.text))
        return feats, cleaned

    def _fit(self, texts: Sequence[CaseText]) -> tuple[NaiveBayes | None, TrainReport]:
        share = self.section.held_back_share
        train = [t for t in texts if not held_back(t.number, share)]
        test = [t for t in texts if held_back(t.number, share)]
        truth = [t.matter or "" for t in test]
        if len({t.matter for t in train}) < 2:
            return None, TrainReport(None, len(train), len(test), None, None, False,
                                     "fewer than two 事项 among the confirmed cases")
        x_train, _ = self._featurize(train)
        model = NaiveBayes.fit(x_train, [t.matter or "" for t in train])
        x_test, c_test = self._featurize(test)
        ruled = [self.rules.predict(c) for c in c_test]
        # Measured as it suggests: the model, deferring to the rules where it is unsure.
        acc = accuracy([combine(model.predict(x), r)[0] for x, r in zip(x_test, ruled,
                                                                       strict=True)], truth)
        racc = accuracy(ruled, truth)
        active = (len(train) >= self.section.min_confirmed and acc is not None
                  and (racc is None or acc > racc))
        return model, TrainReport(None, len(train), len(test), acc, racc, active)

    async def train(self, now: datetime | None = None) -> TrainReport:
        """Train on the latest confirmed cases, measure on the held-back ones (and the
        keyword rules on the same), keep the result; the suggestions use it if active."""
        now = now or self.clock()
        await self.store.reconcile(now)
        texts = await self.store.confirmed(self.section.train_max_cases)
        model, report = await asyncio.to_thread(self._fit, texts)
        if model is None:
            log.info("classifier not trained", extra={"reason": report.reason})
            return report
        row = ClassifierModel(trained_at=now, kind="naive_bayes", cases=report.cases,
                              held_back=report.held_back, accuracy=report.accuracy,
                              rules_accuracy=report.rules_accuracy, active=report.active,
                              classes=model.classes, params=model.to_bytes())
        model_id = await self.store.save_model(row)
        self._model = (model_id, model) if report.active else None
        self._model_checked = self.clock()
        log.info("classifier trained", extra={"model": model_id, "cases": report.cases,
                                              "accuracy": report.accuracy,
                                              "rules_accuracy": report.rules_accuracy,
                                              "active": report.active})
        return TrainReport(model_id, report.cases, report.held_back, report.accuracy,
                           report.rules_accuracy, report.active)

    async def current_model(self) -> tuple[int, NaiveBayes] | None:
        """The latest trained model if it is active (else the rules suggest), re-read at
        most every minute (another process may have trained)."""
        now = self.clock()
        if self._model_checked is not None and now - self._model_checked < MODEL_CHECK:
            return self._model
        self._model_checked = now
        row = await self.store.latest_model(active=False)
        if row is None or not row.active or row.params is None:
            self._model = None
        elif self._model is None or self._model[0] != row.id:
            self._model = (row.id, NaiveBayes.from_bytes(list(row.classes), row.params))
        return self._model

    def guess(self, text: str, model: NaiveBayes | None) -> tuple[Guess | None, str]:
        """The suggestion for a text: the model's when there is one, else the rules'."""
        ruled = self.rules.predict(clean(text))
        if model is None:
            return ruled, "rules"
        return combine(model.predict(features(tokens(text, self.segment), self.hash)), ruled)

    async def suggest(self, number: str, *, text: str = "", visible: Any, user: str
                      ) -> dict[str, Any]:
        """The 事项 and department to suggest on a case's form, from its saved form, its
        transcript and ``text`` (what the agent is typing, not kept)."""
        found = await self.store.text_of(number, visible)
        if found is None:
            raise DomainError("not_found", f"no case {number}")
        case_text, city = found
        full = "\n".join(p for p in (case_text.text, text) if p)
        current = await self.current_model()
        g, source = await asyncio.to_thread(self.guess, full, current[1] if current else None)
        department = await self.loop.suggested_department(g.matter, city) if g else None
        names = {d.id: d.name for d in await self.loop.departments(city=city)} \
            if department else {}
        model_id = current[0] if current and source == "model" else None
        await self.store.shown(case_text.case_id, matter=g.matter if g else None,
                               department=department, confidence=g.confidence if g else 0.0,
                               source=source, model_id=model_id, user=user, now=self.clock())
        return {"number": number, "matter": g.matter if g else None,
                "matter_name": self.taxonomy.path_names(g.matter) if g else None,
                "confidence": g.confidence if g else 0.0,
                "department": department, "department_name": names.get(department or ""),
                "source": source, "model_id": model_id}

    async def classifier_report(self) -> dict[str, Any]:
        models = await self.store.models(10)
        current = await self.current_model()
        since = self.clock() - timedelta(days=30)
        return {
            "source": "model" if current else "rules",
            "model_id": current[0] if current else None,
            "min_confirmed": self.section.min_confirmed,
            "models": [{"id": m.id, "trained_at": iso(m.trained_at), "kind": m.kind,
                        "cases": m.cases, "held_back": m.held_back, "accuracy": m.accuracy,
                        "rules_accuracy": m.rules_accuracy, "active": m.active,
                        "classes": len(m.classes or [])} for m in models],
            "suggestions": await self.store.acceptance(since),
        }
