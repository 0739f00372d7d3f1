"""Position and expected wait (queueing/announce/model.py): what a waiting caller is told,
and when."""

from __future__ import annotations

from common.config import AnnounceSection
from queueing.announce.model import (
    QueueView,
    announcement,
    expected_wait_s,
    minutes,
    next_due,
    queue_view,
)

CFG = AnnounceSection(threshold_s=60, every_s=45, first_after_s=1.0, aht_s=120)


def test_expected_wait_is_position_times_talk_time_over_agents():
    assert expected_wait_s(QueueView(3, 2, 0.0), 120) == 180  # aht_s until Asterisk has one
    assert expected_wait_s(QueueView(3, 2, 100.0), 120) == 150  # the queue's own talk time
    assert expected_wait_s(QueueView(3, 0, 100.0), 120) is None  # nobody can answer
    assert expected_wait_s(QueueView(0, 2, 100.0), 120) is None  # not in the queue
    assert [minutes(s) for s in (1, 60, 61, 179)] == [1, 1, 2, 3]


def test_at_entry_only_a_long_wait_is_said_later_every_one_is():
    short = QueueView(1, 4, 120.0)  # 30 s
    long = QueueView(4, 2, 120.0)  # 240 s
    assert announcement(CFG, short, at_entry=True) is None
    said = announcement(CFG, long, at_entry=True)
    assert said is not None and said.text == "您目前排在第4位，预计等待约4分钟。"
    assert announcement(CFG, short, at_entry=False) is not None
    assert announcement(CFG, QueueView(2, 0, 0.0), at_entry=False) is None


def test_first_after_the_prompt_then_every_n_seconds():
    assert next_due(CFG, queued_at=100.0, welcome_s=5.9, told=0, last_at=None) == 106.9
    assert next_due(CFG, queued_at=100.0, welcome_s=5.9, told=1, last_at=107.0) == 152.0
    off = CFG.model_copy(update={"every_s": 0.0})
    assert next_due(off, queued_at=100.0, welcome_s=0, told=1, last_at=101.0) is None


def test_the_view_from_queue_status():
    entries = [{"Channel": "PJSIP/a-1", "Position": "1"}, {"Channel": "PJSIP/b-2", "Position": "2"}]
    members = [{"Status": "2", "Paused": "0"}, {"Status": "1", "Paused": "1"},
               {"Status": "5", "Paused": "0"}, {"Status": "x"}]
    view = queue_view(entries, members, {"TalkTime": "95"}, "PJSIP/b-2")
    assert view == QueueView(2, 1, 95.0)
    assert queue_view(entries, members, {}, "PJSIP/c-3").position == 0
