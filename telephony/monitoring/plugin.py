"""The monitoring room (监听、耳语、强插), wired. ``Monitoring`` is itself the plugin: nothing
runs before the first request; it acts through each node's AMI client and reads each node's
call tracker, passed in as callables, and publishes on the live events channel."""

from __future__ import annotations

from collections.abc import Callable

from common.config import Config
from telephony.monitoring.services import Ami, Monitoring, Publish, TrackedCalls


def build(cfg: Config, *, ami_of: Callable[[str], Ami],
          tracker_of: Callable[[str], TrackedCalls], publish: Publish) -> Monitoring:
    return Monitoring(cfg, ami_of=ami_of, tracker_of=tracker_of, publish=publish)
