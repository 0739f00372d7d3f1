"""The transfers room, wired. ``CallControl`` is itself the plugin (``start``: nothing runs
before the first console action; ``stop``: the transfers' own tasks); it acts through each
node's AMI client and tracker, passed in as callables, and reports to the sinks it is given."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from common.config import Config
from common.facts import Sink
from telephony.ami import AmiClient
from telephony.transfers.services import CallControl, CaseLookup, Publish, TrackedCalls


def build(cfg: Config, *, ami_of: Callable[[str], AmiClient],
          tracker_of: Callable[[str], TrackedCalls], sinks: Sequence[Sink], cases: CaseLookup,
          publish: Publish) -> CallControl:
    return CallControl(cfg, ami_of=ami_of, tracker_of=tracker_of, sinks=list(sinks),
                       cases=cases, publish=publish)
