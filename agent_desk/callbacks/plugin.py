"""The callbacks room, wired. ``CallbackWorker`` is itself the plugin (``start``: its task on
the abandoned calls it hears of; ``stop``: creates what is queued, then ends): a worker on
call facts, with or without the web console. The callback tasks' store comes in as an
argument (agent_desk/cases/store.py ConsoleStore)."""

from __future__ import annotations

from agent_desk.callbacks.worker import CallbackTasks, CallbackWorker
from common.config import Config


def build(cfg: Config, tasks: CallbackTasks) -> CallbackWorker:
    return CallbackWorker(tasks, max_attempts=cfg.web.callback_attempts,
                          poll_s=max(1.0, cfg.follow_up.poll_s))
