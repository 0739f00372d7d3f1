"""The membership room, wired for one node. ``MembershipSync`` has no life cycle of its own:
it acts on the node's AMI events (a (re)connect reconciles every member) and on the skill and
sign-in changes it is told of, so the node's runtime starts it by starting its AMI client."""

from __future__ import annotations

from collections.abc import Callable

from common.config import Config
from queueing.membership.sync import MembershipSync
from telephony.ami import AmiClient


def build(cfg: Config, node: str, ami: Callable[[], AmiClient], *,
          skills_of: Callable[[str], dict[str, int]],
          signed_in: Callable[[str], bool]) -> MembershipSync:
    return MembershipSync(cfg, node, ami, skills_of=skills_of, signed_in=signed_in)
