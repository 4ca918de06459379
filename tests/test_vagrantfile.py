"""The Vagrantfile, its provisioning script and the deploy/ files, checked without VMs.

- `vagrant validate --ignore-provider` (Debian's vagrant; no VirtualBox or
  libvirt here, hence --ignore-provider) on a copy of the Vagrantfile, for
  CLUSTER_SIZE 1, 3 and 5; a CLUSTER_SIZE of 0 is refused.  When vagrant is
  missing it is installed with apt-get (about 35 s) if we are root; if that
  fails, `ruby -c` checks the syntax instead.  Skipped only when neither tool
  can be had and we are not root.
- The Vagrantfile evaluated by Ruby against a stub of Vagrant's config
  objects: the VMs, their fixed private addresses, the box and the
  provisioner's arguments.
- `scripts/provision-vagrant --print-config` writes an agent.toml that
  node/config.py accepts, binding and advertising the private address.
- deploy/agent.example.toml loads and names every setting; deploy/shoal.service
  runs the agent as asked.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from node.agent.config import HostPort, _FIELD_NAMES, load_config

REPO = Path(__file__).resolve().parents[1]
KEY = "3l2Zb6bMZbAVn8S2pS6r9cqRQyqGdbXx0zqj6b8fJq4="   # 32 bytes, base64


def _apt_install(package: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package]
    r = subprocess.run(cmd, capture_output=True, env=env, stdin=subprocess.DEVNULL, timeout=900)
    if r.returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env, timeout=900)
        subprocess.run(cmd, capture_output=True, env=env, stdin=subprocess.DEVNULL, timeout=900)


def tool(name: str, package: str) -> str | None:
    """The path of `name`, installing `package` first when missing and we are root."""
    found = shutil.which(name)
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        _apt_install(package)
        found = shutil.which(name)
    return found


@pytest.fixture(scope="module")
def ruby() -> str:
    found = tool("ruby", "ruby")
    if found is None:
        pytest.skip("ruby is not installed and we are not root to install it")
    return found


def copy_tree(tmp: Path) -> Path:
    (tmp / "scripts").mkdir()
    shutil.copy(REPO / "Vagrantfile", tmp / "Vagrantfile")
    shutil.copy(REPO / "scripts" / "provision-vagrant", tmp / "scripts" / "provision-vagrant")
    return tmp


def test_vagrant_validate(tmp_path):
    vagrant = tool("vagrant", "vagrant")
    if vagrant is None:
        ruby = tool("ruby", "ruby")
        if ruby is None:
            pytest.skip("neither vagrant nor ruby is installed, and we are not root to install them")
        r = subprocess.run([ruby, "-c", str(REPO / "Vagrantfile")], capture_output=True, text=True)
        assert r.returncode == 0 and "Syntax OK" in r.stdout, r.stderr
        return
    work = copy_tree(tmp_path)
    env = {**os.environ, "VAGRANT_HOME": str(tmp_path / "vagrant.d"), "VAGRANT_CHECKPOINT_DISABLE": "1",
           "SHOAL_GOSSIP_KEY": KEY}
    for size in ("1", "3", "5"):
        r = subprocess.run([vagrant, "validate", "--ignore-provider"], cwd=work, capture_output=True,
                           text=True, env={**env, "CLUSTER_SIZE": size}, timeout=120)
        assert r.returncode == 0, (size, r.stdout, r.stderr)
        assert "validated successfully" in r.stdout
        assert r.stdout.count("Ignoring provider config") == int(size)
    r = subprocess.run([vagrant, "validate", "--ignore-provider"], cwd=work, capture_output=True, text=True,
                       env={**env, "CLUSTER_SIZE": "0"}, timeout=120)
    assert r.returncode != 0 and "CLUSTER_SIZE must be between 1 and 50" in r.stdout + r.stderr
    # Without SHOAL_GOSSIP_KEY a key is generated once, into .vagrant/ (never committed).
    del env["SHOAL_GOSSIP_KEY"]
    for _ in range(2):
        r = subprocess.run([vagrant, "validate", "--ignore-provider"], cwd=work, capture_output=True,
                           text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
    key_file = work / ".vagrant" / "shoal-gossip.key"
    assert len(key_file.read_text().strip()) == 44 and key_file.stat().st_mode & 0o077 == 0


# A stand-in for Vagrant's config objects that records what the Vagrantfile asks for.
STUB = r"""
require "json"
$out = { "machines" => [] }
class Anything
  def method_missing(*_args, **_kw, &blk)
    blk&.call(Anything.new)
    Anything.new
  end
  def respond_to_missing?(*) true end
end
class MachineVM < Anything
  def initialize(m) @m = m end
  def hostname=(v) @m["hostname"] = v end
  def network(type, **opts) (@m["networks"] ||= []) << [type, opts] end
  def provision(type, **opts) (@m["provision"] ||= []) << opts.merge(type: type) end
end
class Machine
  def initialize(m) @vm = MachineVM.new(m) end
  attr_reader :vm
end
class ConfigVM < Anything
  def box=(v) $out["box"] = v end
  def synced_folder(src, dst, **opts) $out["synced"] = [src, dst, opts[:type]] end
  def define(name, **opts)
    m = { "name" => name, "primary" => opts[:primary] }
    $out["machines"] << m
    yield Machine.new(m)
  end
end
class Config < Anything
  def vm() @vm ||= ConfigVM.new end
end
module Vagrant
  def self.configure(_version) yield Config.new end
end
load ARGV[0]
puts JSON.generate($out)
"""


def evaluate(ruby: str, tmp: Path, **env: str) -> dict:
    tmp.mkdir(exist_ok=True)
    work = copy_tree(tmp)
    (tmp / "stub.rb").write_text(STUB)
    r = subprocess.run([ruby, str(tmp / "stub.rb"), str(work / "Vagrantfile")], cwd=work, capture_output=True,
                       text=True, env={**os.environ, "SHOAL_GOSSIP_KEY": KEY, **env}, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_vagrantfile_machines(ruby, tmp_path):
    out = evaluate(ruby, tmp_path)
    assert out["box"] == "debian/bookworm64"
    assert out["synced"] == [".", "/vagrant", "rsync"]
    machines = out["machines"]
    assert [m["name"] for m in machines] == ["shoal1", "shoal2", "shoal3"]
    assert [m["primary"] for m in machines] == [True, False, False]
    ips = [m["networks"][0][1]["ip"] for m in machines]
    assert ips == ["192.168.56.11", "192.168.56.12", "192.168.56.13"]
    assert all(m["networks"][0][0] == "private_network" for m in machines)
    for m, ip in zip(machines, ips):
        (prov,) = m["provision"]
        assert prov["type"] == "shell" and prov["path"] == "scripts/provision-vagrant"
        assert prov["env"] == {"SHOAL_GOSSIP_KEY": KEY}
        name, addr, rack, *seeds = prov["args"]
        assert (name, addr) == (m["name"], ip) and m["hostname"] == name
        others = [f"{other}:7946" for other in ips if other != ip]
        assert seeds == others
    assert [m["provision"][0]["args"][2] for m in machines] == ["r1", "r2", "r1"]
    # The first VM is every other VM's first seed.
    assert all(m["provision"][0]["args"][3] == "192.168.56.11:7946" for m in machines[1:])

    out = evaluate(ruby, tmp_path / "five", CLUSTER_SIZE="5", SHOAL_SUBNET="10.9.8", SHOAL_RACKS="3")
    assert [m["networks"][0][1]["ip"] for m in out["machines"]] == [f"10.9.8.{i}" for i in range(11, 16)]
    assert [m["provision"][0]["args"][2] for m in out["machines"]] == ["r1", "r2", "r3", "r1", "r2"]


def provision_config(tmp: Path, *args: str, key: str | None = KEY, **extra_env: str):
    env = {k: v for k, v in os.environ.items() if k != "SHOAL_GOSSIP_KEY"} | extra_env
    if key:
        env["SHOAL_GOSSIP_KEY"] = key
    r = subprocess.run(["bash", str(REPO / "scripts" / "provision-vagrant"), "--print-config", *args],
                       capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 0, r.stderr
    path = tmp / f"{args[0]}.toml"
    path.write_text(r.stdout)
    return load_config(path), r.stdout


def test_provisioned_agent_config(tmp_path):
    cfg, text = provision_config(tmp_path, "shoal2", "192.168.56.12", "r2", "192.168.56.11:7946",
                                 "192.168.56.13:7946")
    assert cfg.name == "shoal2"
    assert cfg.bind == HostPort("192.168.56.12", 7946) and cfg.advertise == HostPort("192.168.56.12", 7946)
    assert cfg.join == (HostPort("192.168.56.11", 7946), HostPort("192.168.56.13", 7946))
    assert cfg.api == HostPort("127.0.0.1", 7980) and cfg.api_token is None
    assert cfg.runtime == "docker" and cfg.profile == "lan"
    assert dict(cfg.labels) == {"rack": "r2"}
    assert cfg.encrypt is not None and len(cfg.encrypt) == 32
    assert cfg.state_dir == Path("/var/lib/shoal") and cfg.keyring_file == Path("/var/lib/shoal/keyring.json")
    # One VM alone: no seeds.
    cfg, _ = provision_config(tmp_path, "shoal1", "192.168.56.11", "r1")
    assert cfg.join == () and cfg.encrypt is not None
    # No key: refused (the agent would refuse to gossip on the private network),
    # unless unencrypted gossip is asked for explicitly.
    r = subprocess.run(["bash", str(REPO / "scripts" / "provision-vagrant"), "--print-config", "shoal1",
                        "192.168.56.11", "r1"], capture_output=True, text=True, timeout=30,
                       env={k: v for k, v in os.environ.items() if k != "SHOAL_GOSSIP_KEY"})
    assert r.returncode == 2 and "shoal keygen" in r.stderr
    cfg, _ = provision_config(tmp_path, "shoal1", "192.168.56.11", "r1", key=None,
                              SHOAL_INSECURE_NO_ENCRYPTION="1")
    assert cfg.encrypt is None and cfg.insecure_no_encryption
    # Values that would break the TOML are refused.
    r = subprocess.run(["bash", str(REPO / "scripts" / "provision-vagrant"), "--print-config", 'a"b', "1.2.3.4",
                        "r1"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2


def test_example_config_names_every_setting(tmp_path):
    example = REPO / "deploy" / "agent.example.toml"
    # The example's gossip key is a placeholder for `shoal keygen`'s output.
    assert '\nencrypt = "base64key..."\n' in example.read_text()
    filled = tmp_path / "filled.toml"
    filled.write_text(example.read_text().replace('"base64key..."', f'"{KEY}"'))
    cfg = load_config(filled)
    assert cfg.runtime == "docker" and cfg.advertise is not None
    text = example.read_text()
    named = set(re.findall(r"^(?:# )?([a-z_]+) = ", text, re.M)) | set(re.findall(r"^(?:# )?\[([a-z_]+)\]",
                                                                                   text, re.M))
    assert _FIELD_NAMES <= named, sorted(_FIELD_NAMES - named)
    # With every optional setting switched on (and a token, required off loopback) it still loads.
    lines = []
    for line in text.splitlines():
        m = re.match(r"# ((?:[a-z_]+ = .*)|(?:\[[a-z_]+\]))$", line)
        lines.append(m.group(1) if m else line)
    full = "\n".join(lines).replace('"base64key..."', f'"{KEY}"')
    # The TLS files the example names must exist to load: stand-ins here.
    for name in ("node-1.crt", "node-1.key", "ca.crt"):
        (tmp_path / name).write_text("stand-in")
    full = full.replace("/etc/shoal/tls/", f"{tmp_path}/")
    path = tmp_path / "full.toml"
    path.write_text(full)
    cfg = load_config(path)
    assert cfg.api_token and cfg.encrypt and cfg.cpu_millis == 2000 and cfg.label == "prod"
    assert dict(cfg.tags) == {"dc": "west"} and dict(cfg.labels) == {"rack": "r1", "zone": "eu-1"}


def test_systemd_unit():
    unit = (REPO / "deploy" / "shoal.service").read_text()
    keys = {}
    for line in unit.splitlines():
        if "=" in line and not line.startswith("#"):
            k, _, v = line.partition("=")
            keys.setdefault(k.strip(), v.strip())
    assert keys["ExecStart"] == "/opt/shoal/bin/shoal agent --config /etc/shoal/agent.toml"
    assert keys["Restart"] == "on-failure"
    assert keys["KillSignal"] == "SIGTERM"
    assert keys["StateDirectory"] == "shoal"
    assert keys["WantedBy"] == "multi-user.target"
