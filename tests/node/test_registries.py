"""The agent's [images] table: pull limits and where registry credentials are
(node/agent/registries.py).  Passwords live in files, never in the config."""

from __future__ import annotations

import base64
import json

import pytest

from node.agent.config import ConfigError, build_config
from node.agent.runtime_link import docker_settings
from node.agent.registries import ImagesConfig, images_config


def test_defaults_and_limits_reach_the_docker_runtime():
    cfg = build_config({"bind": "127.0.0.1:0", "images": {"max_concurrent_pulls": 3, "pull_timeout_s": 120}})
    assert (cfg.images.max_concurrent_pulls, cfg.images.pull_timeout_s) == (3, 120.0)
    kw = docker_settings(cfg)
    assert (kw["pull_images"], kw["max_concurrent_pulls"], kw["pull_timeout_s"]) == (True, 3, 120.0)
    assert build_config({"bind": "127.0.0.1:0"}).images == ImagesConfig()
    assert images_config({"max_peer_serves": 0}).max_peer_serves == 0     # serves no peer


@pytest.mark.parametrize("table,field", [
    ({"max_concurrent_pulls": 0}, "images.max_concurrent_pulls"),
    ({"pull_timeout_s": -1}, "images.pull_timeout_s"),
    ({"max_peer_serves": -1}, "images.max_peer_serves"),
    ({"max_peer_serves": True}, "images.max_peer_serves"),
    ({"pulls": 1}, "images.pulls"),
    ({"registries": {"reg:5000": {"username": "u", "password": "p"}}}, "images.registries.reg:5000.password"),
    ({"registries": {"reg:5000": {"username": "u"}}}, "images.registries.reg:5000.password_file"),
    ({"registries": {"bad host!": {"username": "u", "password_file": "/x"}}}, "images.registries.bad host!"),
])
def test_bad_settings_name_their_field(table, field):
    with pytest.raises(ConfigError) as info:
        images_config(table)
    assert str(info.value).startswith(f"{field}:")


def test_an_inline_password_is_refused_saying_where_it_goes():
    with pytest.raises(ConfigError) as info:
        build_config({"bind": "127.0.0.1:0",
                      "images": {"registries": {"reg:5000": {"username": "u", "password": "hunter2"}}}})
    assert "password_file" in str(info.value) and "hunter2" not in str(info.value)


def test_a_registry_entry_reads_its_password_file_at_each_pull(tmp_path):
    pw = tmp_path / "reg.pass"
    pw.write_text("first\n")
    cfg = images_config({"registries": {"reg:5000": {"username": "deploy", "password_file": str(pw)}},
                         "docker_config": str(tmp_path / "none.json")})
    assert cfg.auth_for("reg:5000") == {"username": "deploy", "password": "first", "serveraddress": "reg:5000"}
    pw.write_text("rotated\n")
    assert cfg.auth_for("reg:5000")["password"] == "rotated"
    assert cfg.auth_for("other:5000") is None           # anonymous
    # The config shows where the password is, never the password.
    assert "rotated" not in repr(cfg) and str(pw) in repr(cfg)
    pw.unlink()
    with pytest.raises(OSError):
        cfg.auth_for("reg:5000")


def test_dockers_config_json_is_read_for_other_hosts(tmp_path):
    conf = tmp_path / "config.json"
    conf.write_text(json.dumps({"auths": {
        "reg:5000": {"auth": base64.b64encode(b"ci:pa:ss").decode()},
        "https://index.docker.io/v1/": {"username": "hubuser", "password": "hubpass"},
    }}))
    cfg = images_config({"docker_config": str(conf)})
    assert cfg.auth_for("reg:5000") == {"username": "ci", "password": "pa:ss", "serveraddress": "reg:5000"}
    assert cfg.auth_for("docker.io")["username"] == "hubuser"
    assert cfg.auth_for("elsewhere:5000") is None
    conf.write_text("{not json")
    with pytest.raises(ValueError):
        cfg.auth_for("reg:5000")


def test_docker_config_defaults_to_dockers_usual_path(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert ImagesConfig().docker_config_path() == tmp_path / "config.json"
    monkeypatch.delenv("DOCKER_CONFIG")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert ImagesConfig().docker_config_path() == tmp_path / "home" / ".docker" / "config.json"


def test_the_docs_and_the_example_give_the_defaults():
    import re
    from pathlib import Path
    repo = Path(__file__).resolve().parents[2]
    doc = (repo / "docs" / "configuration.md").read_text()
    documented = dict(re.findall(r"### `images\.([a-z_]+)`\n\nDefault: `([^`]+)`", doc))
    assert documented == {"max_concurrent_pulls": "2", "pull_timeout_s": "600.0", "max_peer_serves": "2"}
    for name, value in documented.items():
        assert repr(getattr(ImagesConfig(), name)) == value
    example = (repo / "deploy" / "agent.example.toml").read_text()
    block = example[example.index("\n[images]\n"):example.index("\n[containers]\n")]
    uncommented = re.sub(r"^# ([a-z_]+ = .*)$", r"\1", block, flags=re.M)
    cfg = build_config({"bind": "127.0.0.1:0", **__import__("tomllib").loads(uncommented)})
    assert (cfg.images.max_concurrent_pulls, cfg.images.pull_timeout_s, cfg.images.max_peer_serves) == (2, 600.0, 2)
    assert str(cfg.images.docker_config) == "/root/.docker/config.json"
