"""An agent's own SIP credentials: what the softphone needs, and nothing more.

The service derives each agent's SIP password from the master secret (``common.secrets``) and
renders it into Asterisk's configuration; ``hotline softphone credentials --agent 1001``
(run where the master secret is: the service's host) writes that one agent's password into a
file for the agent's machine. The softphone reads the file (or ``HOTLINE_AGENT_PASSWORD``)
and never sees the master secret, from which every agent's password would follow."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from common.config import Config, ConfigError
from common.secrets import sip_password

PASSWORD_ENV = "HOTLINE_AGENT_PASSWORD"


@dataclass(frozen=True)
class AgentCredentials:
    agent: str
    server: str  # host:port the softphone registers at
    password: str


def issue_credentials(cfg: Config, agent_id: str) -> AgentCredentials:
    """The agent's credentials (needs the master SIP secret: the service's side only)."""
    try:
        agent = cfg.agent(agent_id)
    except KeyError:
        raise ConfigError(f"agent {agent_id!r} is not in the configuration") from None
    return AgentCredentials(agent.id, agent_server(cfg, agent.id),
                            sip_password(cfg.sip_secret, agent.id))


def agent_server(cfg: Config, agent_id: str) -> str:
    """Where the agent's softphone registers: its city's node."""
    node = cfg.node(cfg.city(cfg.agent(agent_id).city).node)
    host = "127.0.0.1" if node.sip_host in ("0.0.0.0", "") else node.sip_host
    return f"{host}:{node.sip_port}"


def write_credentials(path: Path, creds: AgentCredentials) -> None:
    """Write the file readable by its owner only (it is the agent's password)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(asdict(creds), f, indent=2)
        f.write("\n")
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_TRUNC


def read_credentials(path: Path) -> AgentCredentials:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return AgentCredentials(str(doc["agent"]), str(doc["server"]), str(doc["password"]))
    except FileNotFoundError:
        raise ConfigError(f"{path}: credentials file not found") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a softphone credentials file ({exc}); make one with "
                          "`hotline softphone credentials --agent ID --out FILE`") from None


def softphone_credentials(cfg: Config, agent_id: str, path: Path | None) -> AgentCredentials:
    """What the softphone registers with: the file, else the password in the environment
    (the server then from the configuration). Never derived from the master secret here."""
    if path is not None:
        creds = read_credentials(path)
        if creds.agent != agent_id:
            raise ConfigError(f"{path}: credentials of agent {creds.agent}, not {agent_id}")
        return creds
    password = os.environ.get(PASSWORD_ENV, "")
    if not password:
        raise ConfigError(
            f"the softphone of agent {agent_id} needs its credentials: --credentials FILE or "
            f"{PASSWORD_ENV} (issued with `hotline softphone credentials --agent {agent_id}` "
            "where the service runs)")
    return AgentCredentials(agent_id, agent_server(cfg, agent_id), password)
