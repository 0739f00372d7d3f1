"""The one configuration file: the example is valid, and every mistake names its key."""

from __future__ import annotations

import tomllib

import pytest

from common.config import ConfigError, load_config, parse_config
from lab.harness import EXAMPLE_CONFIG, to_toml


def example() -> dict:
    return tomllib.loads(EXAMPLE_CONFIG.read_text(encoding="utf-8"))


def check(raw: dict) -> str:
    with pytest.raises(ConfigError) as err:
        parse_config(to_toml(raw), source="hotline.toml")
    return str(err.value)


def test_example_config_is_valid():
    cfg = load_config(EXAMPLE_CONFIG)
    assert {c.id for c in cfg.cities} == {"nanjing", "suzhou"}
    assert cfg.agent("1001").skills["general"] == 4


def test_unknown_key_is_named():
    raw = example()
    raw["fastagi"]["prot"] = 1
    assert "fastagi.prot: unknown key" in check(raw)


def test_bad_reference_is_named():
    raw = example()
    raw["agents"][1]["skills"]["plumbing"] = 2
    raw["agents"][2]["city"] = "atlantis"
    msg = check(raw)
    assert "agents[1].skills.plumbing: unknown skill" in msg
    assert "agents[2].city: unknown city 'atlantis'" in msg


def test_bad_values_are_named_with_what_was_given():
    raw = example()
    raw["nodes"][0]["ami_port"] = 70000
    raw["agents"][0]["skills"]["general"] = 9
    raw["menu"]["keys"]["12"] = "general"
    msg = check(raw)
    assert "nodes[0].ami_port" in msg and "70000" in msg
    assert "agents[0].skills.general" in msg
    assert "menu.keys.12" in msg


def test_missing_required_section():
    raw = example()
    del raw["skills"]
    msg = check(raw)
    assert "skills: required key is missing" in msg


def test_duplicate_ids_and_ports():
    raw = example()
    raw["agents"].append(dict(raw["agents"][0]))
    raw["nodes"].append(dict(raw["nodes"][0], id="node2"))
    msg = check(raw)
    assert "agents[3]: duplicate '1001'" in msg
    assert "nodes[1].sip_port: 5060 already used" in msg


def test_not_toml_and_missing_file():
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_config("[[nodes]\nid=", source="x.toml")
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config("/nonexistent/hotline.toml")


def test_trunk_must_be_recognisable_and_addresses_valid():
    raw = example()
    raw["trunks"][2]["match"] = ["not-an-ip"]
    raw["trunks"][0].pop("match_header")
    msg = check(raw)
    assert "trunks[2].match" in msg and "not an IP" in msg
    assert "trunks[0]" in msg and "needs match" in msg


def test_secrets_come_from_the_environment(monkeypatch):
    cfg = load_config(EXAMPLE_CONFIG)
    monkeypatch.delenv("HOTLINE_AMI_SECRET", raising=False)
    with pytest.raises(ConfigError, match="HOTLINE_AMI_SECRET must hold a secret"):
        _ = cfg.ami_secret
    monkeypatch.setenv("HOTLINE_DB_PASSWORD", "s3cret")
    raw = example()
    raw["database"]["url"] = "postgresql+asyncpg://hotline:${HOTLINE_DB_PASSWORD}@db/hotline"
    assert "s3cret@db" in parse_config(to_toml(raw)).database_url
    raw["database"]["url"] = "postgresql+asyncpg://hotline:${NOT_SET_ANYWHERE}@db/hotline"
    with pytest.raises(ConfigError, match=r"database.url: refers to \$\{NOT_SET_ANYWHERE\}"):
        _ = parse_config(to_toml(raw)).database_url
