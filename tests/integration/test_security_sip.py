"""SIP endpoints with strong secrets and an ACL, against a real Asterisk: real REGISTERs (sipp)
from an address outside ``[security] agent_networks`` are refused even with the right
password (Asterisk checks the endpoint's ACL first and answers a refused address as it
answers a wrong password, with a fresh 401 challenge: nothing tells an outsider whether a
password was right), from inside with the right password accepted, with a wrong one
refused, a Contact pointing outside refused; Asterisk's security log records each refusal
with the remote address (what fail2ban reads). 127.0.0.2 is another address of this
machine's loopback."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from common.secrets import sip_password
from lab.harness import Lab, free_sip_port
from tests.support.service import lab_test_config

pytestmark = [pytest.mark.asterisk]

SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="register">
  <send retrans="500"><![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{user}@[remote_ip]>;tag=[call_number]
To: <sip:{user}@[remote_ip]>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:{user}@{contact}>
Max-Forwards: 70
Expires: {expires}
User-Agent: sipp-security-test
Content-Length: 0

]]></send>
{answer}
</scenario>
"""

CHALLENGED = """  <recv response="401" auth="true"/>
  <send retrans="500"><![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{user}@[remote_ip]>;tag=[call_number]
To: <sip:{user}@[remote_ip]>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:{user}@{contact}>
[authentication username={user} password={password}]
Max-Forwards: 70
Expires: {expires}
User-Agent: sipp-security-test
Content-Length: 0

]]></send>
  <recv response="{final}"/>
"""


@pytest.fixture(scope="module")
async def acl_lab(tmp_path_factory):
    """An Asterisk of its own, agents allowed from 127.0.0.1 only."""
    lab = Lab(lab_test_config(tmp_path_factory.mktemp("acl"),
                          **{"security.agent_networks": ["127.0.0.1/32"]}))
    await lab.start_asterisk()
    yield lab
    await lab.close()


async def register(lab: Lab, tmp: Path, *, source: str, user: str = "1001",
                   password: str | None = None, contact_host: str | None = None,
                   expect: str) -> subprocess.CompletedProcess[str]:
    """One REGISTER by sipp bound to ``source``, challenged, then answered with ``password``:
    ``expect`` is the final answer ("200", "401", "403")."""
    sipp = shutil.which("sipp")
    assert sipp, "sipp (Debian sip-tester) is needed: scripts/bootstrap.sh installs it"
    port = free_sip_port()
    contact = f"{contact_host or source}:{port}"
    fmt = {"user": user, "contact": contact, "password": password or "",
           "expires": 0 if expect == "200" else 60, "final": expect}
    answer = CHALLENGED.format(**fmt)
    scenario = tmp / f"reg-{source}-{expect}-{port}.xml"
    scenario.write_text(SCENARIO.format(answer=answer, **fmt), encoding="latin-1")
    argv = [sipp, lab.sip_server(), "-sf", str(scenario), "-i", source, "-p", str(port),
            "-m", "1", "-timeout", "15s", "-timeout_error", "-nostdin",
            "-trace_err", "-error_file", str(tmp / f"err-{port}.log")]
    out = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True,
                                  timeout=60, cwd=tmp)
    return out


async def test_agents_register_only_from_their_networks_with_their_password(acl_lab, tmp_path):
    lab = acl_lab
    good = sip_password(lab.cfg.sip_secret, "1001")
    pjsip = (lab.instance.dir / "etc" / "pjsip.conf").read_text()
    assert "acl = hotline-agents" in pjsip and "contact_acl = hotline-agents" in pjsip
    acl = (lab.instance.dir / "etc" / "acl.conf").read_text()
    assert "[hotline-agents]\ndeny = 0.0.0.0/0\ndeny = ::/0\npermit = 127.0.0.1/32" in acl

    inside = await register(lab, tmp_path, source="127.0.0.1", password=good, expect="200")
    assert inside.returncode == 0, inside.stdout[-2000:] + inside.stderr[-2000:]
    outside = await register(lab, tmp_path, source="127.0.0.2", password=good, expect="401")
    assert outside.returncode == 0, outside.stdout[-2000:] + outside.stderr[-2000:]
    wrong = await register(lab, tmp_path, source="127.0.0.1", password="not-" + good[4:],
                           expect="401")
    assert wrong.returncode == 0, wrong.stdout[-2000:] + wrong.stderr[-2000:]
    # From inside, but the Contact (where calls would be sent) outside the networks.
    contact = await register(lab, tmp_path, source="127.0.0.1", password=good,
                             contact_host="127.0.0.2", expect="401")
    assert contact.returncode == 0, contact.stdout[-2000:] + contact.stderr[-2000:]
    # A trunk recognised by its header is held to its SBCs' networks too.
    pjsip_trunk = pjsip.split("[trunk-nanjing](hotline-endpoint)", 1)[1].split("\n\n", 1)[0]
    assert "acl = hotline-trunk-nanjing" in pjsip_trunk

    # Nothing registered but the one inside.
    contacts = await asyncio.to_thread(lab.instance.cli, "pjsip show contacts")
    assert "127.0.0.2" not in contacts
    # Asterisk's security log has each refusal, with the remote address (fail2ban's input).
    log = lab.instance.dir / "log" / "security.log"

    async def logged():
        text = log.read_text(errors="replace") if log.exists() else ""
        return text if ("FailedACL" in text and "127.0.0.2" in text
                        and ("ChallengeResponseFailed" in text or "InvalidPassword" in text)
                        ) else None
    deadline = asyncio.get_running_loop().time() + 10
    text = await logged()
    while text is None and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.2)
        text = await logged()
    assert text, (log.read_text(errors="replace") if log.exists() else "no security.log")
    assert good not in text  # the password is never logged
