"""Wiring of the privacy jobs: each feature's purger and re-encryption, in the order they run
(the service's retention worker, ``hotline privacy purge|rekey``, ``hotline asr purge``)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_desk import retention as desk_retention
from agent_desk.intake import retention as intake_retention
from agent_desk.intake.retention import IntakeCaseEraser
from agent_desk.retention import DeskCaseEraser, SystemAudit
from asr import retention as asr_retention
from asr.retention import AsrCaseEraser, RecordingsPurger, TranscriptsPurger
from cases import retention as case_retention
from cases.loop import retention as loop_retention
from cases.loop.retention import LoopCaseEraser
from cases.retention import CasePersonalPurger
from common.config import Config
from common.privacy import PersonalData
from common.rekey import RekeyTable
from common.retention import RetentionJob
from telephony.asterisk.instance import cel_path
from telephony.calls.retention import CelPurger, ReadCheckpoints


def recordings_purger(cfg: Config, sessions: async_sessionmaker[AsyncSession]
                      ) -> RecordingsPurger:
    return RecordingsPurger(sessions, SystemAudit(),
                            retention_days=cfg.recording.retention_days)


def retention_job(cfg: Config, sessions: async_sessionmaker[AsyncSession],
                  checkpoints: ReadCheckpoints, cel_paths: dict[str, Path] | None = None
                  ) -> RetentionJob:
    """The whole retention job; ``cel_paths`` (node id -> CEL database) defaults to where
    each node's Asterisk writes it."""
    audit = SystemAudit()
    paths = {n.id: cel_path(cfg, n) for n in cfg.nodes} if cel_paths is None else cel_paths
    return RetentionJob([
        # Personal fields first: they take the case's recordings and transcript with them.
        CasePersonalPurger(sessions, audit,
                           [AsrCaseEraser(), DeskCaseEraser(), IntakeCaseEraser(),
                            LoopCaseEraser()],
                           retention_days=cfg.privacy.case_personal_retention_days),
        recordings_purger(cfg, sessions),
        TranscriptsPurger(sessions, audit,
                          retention_days=cfg.privacy.transcript_retention_days),
        CelPurger(paths, checkpoints, retention_days=cfg.privacy.cel_retention_days),
    ])


def rekey_tables(pd: PersonalData) -> list[RekeyTable]:
    """Every table with personal data, as its feature re-encrypts it."""
    return [*case_retention.rekey_tables(pd), *loop_retention.rekey_tables(pd),
            *desk_retention.rekey_tables(pd),
            *intake_retention.rekey_tables(pd), *asr_retention.rekey_tables(pd)]
