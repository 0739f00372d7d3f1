"""The insight room's tables (migration 0018_insight).

- ``insight_case_terms``: which words a case's form and transcript hold, as keyed hashes
  (common.privacy ``term_hash``), with the case's city and arrival: what keyword counts are
  made of. Never the text; pruned once older than the baseline needs.
- ``insight_indexed``: how far each case's text has been counted (form version, transcript),
  so a pass counts a case once and a later form or transcript adds only its new words.
- ``insight_alerts`` and ``insight_alert_cases``: one alert per burst, with the cases behind
  it, who acknowledged it and the case they were merged into (并单).
- ``insight_suggestions``: the 事项 and department suggested on a case's form, and once the
  agent classified the case, whether they took it.
- ``insight_models``: the classifier after each training, with its accuracy on held-back
  confirmed cases next to the keyword rules' (its parameters: hashed features and weights).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from common.db import Base, utcnow


class CaseTerm(Base):
    __tablename__ = "insight_case_terms"

    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"),
                                         primary_key=True)
    term: Mapped[str] = mapped_column(String(16), primary_key=True)  # keyed hash
    city: Mapped[str | None] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(index=True)  # the case's arrival


class Indexed(Base):
    __tablename__ = "insight_indexed"

    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"),
                                         primary_key=True)
    form_version: Mapped[int] = mapped_column(Integer, default=0)
    transcript: Mapped[bool] = mapped_column(default=False)
    indexed_at: Mapped[datetime] = mapped_column(default=utcnow)


class HotAlert(Base):
    __tablename__ = "insight_alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The series that opened it: "matter" (事项 in a district) or "keyword" (a word in a city).
    kind: Mapped[str] = mapped_column(String(16))
    series: Mapped[str] = mapped_column(String(200))
    city: Mapped[str | None] = mapped_column(String(32), index=True)
    district: Mapped[str | None] = mapped_column(String(32))
    matter: Mapped[str | None] = mapped_column(String(128))
    # The hot word in clear (a word shared by the burst's cases, not one caller's text).
    term: Mapped[str | None] = mapped_column(String(32))
    # Every series found in this burst: {kind, key, term, observed, expected, p}.
    signals: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # Set while the burst lasts (one open alert per series; a second process's duplicate
    # fails on it), cleared when it subsides.
    open_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    last_warm_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(index=True)
    observed: Mapped[int] = mapped_column(Integer, default=0)  # the opening count
    expected: Mapped[float] = mapped_column(Float, default=0.0)
    p_value: Mapped[float] = mapped_column(Float, default=1.0)
    peak: Mapped[int] = mapped_column(Integer, default=0)
    cases: Mapped[int] = mapped_column(Integer, default=0)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    acknowledged_at: Mapped[datetime | None] = mapped_column()
    merged_into: Mapped[str | None] = mapped_column(String(32))
    merged_by: Mapped[str | None] = mapped_column(String(64))
    merged_at: Mapped[datetime | None] = mapped_column()


class HotAlertCase(Base):
    __tablename__ = "insight_alert_cases"

    alert_id: Mapped[int] = mapped_column(ForeignKey("insight_alerts.id", ondelete="CASCADE"),
                                          primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"),
                                         primary_key=True, index=True)
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


class Suggestion(Base):
    __tablename__ = "insight_suggestions"

    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"),
                                         primary_key=True)
    matter: Mapped[str | None] = mapped_column(String(128))
    department: Mapped[str | None] = mapped_column(String(32))
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    source: Mapped[str] = mapped_column(String(8))  # model | rules
    model_id: Mapped[int | None] = mapped_column(Integer)
    shown_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    shown_to: Mapped[str] = mapped_column(String(64), default="")
    # Once the case is classified: the 事项 the agent chose, and whether it was the suggestion.
    confirmed_matter: Mapped[str | None] = mapped_column(String(128))
    accepted: Mapped[bool | None] = mapped_column()
    confirmed_at: Mapped[datetime | None] = mapped_column()


class ClassifierModel(Base):
    __tablename__ = "insight_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trained_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(String(16), default="naive_bayes")
    cases: Mapped[int] = mapped_column(Integer, default=0)  # trained on
    held_back: Mapped[int] = mapped_column(Integer, default=0)
    accuracy: Mapped[float | None] = mapped_column(Float)
    rules_accuracy: Mapped[float | None] = mapped_column(Float)
    # Used for suggestions: enough confirmed cases and better than the rules.
    active: Mapped[bool] = mapped_column(default=False)
    classes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    params: Mapped[bytes | None] = mapped_column(LargeBinary)
