"""The agent's `[images]` table: pull limits and registry credentials.

How this works: `images_config(table)` validates the table into a frozen
`ImagesConfig`; `ImagesConfig.auth_for(host)` is what the Docker runtime
asks for at each pull (node/runtime/pulls.py).

    [images]
    max_concurrent_pulls = 2          # per node; more wait their turn
    pull_timeout_s = 600              # one pull, whatever its size
    max_peer_serves = 2               # images sent to peers at once (0: none)
    docker_config = "/root/.docker/config.json"   # default: Docker's usual path
    [images.registries."registry.example:5000"]
    username = "deploy"
    password_file = "/etc/shoal/registry.pass"

The rule for secrets: the config holds only *where* a password is (a file,
or Docker's `config.json`), never the password itself (an inline `password`
is refused), so nothing that shows or logs the configuration can show a
password.  Each pull reads the file anew (a rotated password needs no
restart) and hands the credentials to the local engine only: they are not
gossiped, logged, put in events or in any API answer, and job specs have no
field for them.

Lookup: a `[images.registries."HOST"]` entry for the image's registry host
wins; otherwise Docker's `config.json` (`$DOCKER_CONFIG/config.json`, else
`~/.docker/config.json`, or the `docker_config` given) is read for an
`auths` entry of that host (its `auth`, base64 of `user:password`, or
`username` and `password`); Docker Hub's entry is also found under
`https://index.docker.io/v1/`.  Credential helpers (`credsStore`,
`credHelpers`) are not run.  No entry: the pull is anonymous.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.agent.errors import ConfigError
from node.agent.tuning import toml_value

HOST_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?", re.ASCII)
DOCKER_HUB_KEYS = ("docker.io", "index.docker.io", "https://index.docker.io/v1/", "registry-1.docker.io")
MAX_SECRET_FILE_BYTES = 64 * 1024
MAX_REGISTRIES = 64


@dataclass(frozen=True, slots=True)
class RegistryLogin:
    """Where one registry's credentials are: a user name and a password file."""

    username: str
    password_file: Path


@dataclass(frozen=True, slots=True)
class ImagesConfig:
    max_concurrent_pulls: int = 2
    pull_timeout_s: float = 600.0
    max_peer_serves: int = 2                # node/agent/image_share.py; 0: serve no peer
    docker_config: Path | None = None       # None: Docker's usual path
    registries: tuple[tuple[str, RegistryLogin], ...] = ()   # sorted by host

    def docker_config_path(self) -> Path:
        if self.docker_config is not None:
            return self.docker_config
        base = os.environ.get("DOCKER_CONFIG")
        return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"

    def auth_for(self, host: str) -> dict[str, str] | None:
        """The credentials to pull from `host` with, or None (anonymous).
        Raises OSError or ValueError when a configured file cannot be read."""
        for name, login in self.registries:
            if name == host:
                password = _read_secret(login.password_file)
                return {"username": login.username, "password": password, "serveraddress": host}
        return _from_docker_config(self.docker_config_path(), host)


def _read_secret(path: Path) -> str:
    with open(path, "rb") as f:
        data = f.read(MAX_SECRET_FILE_BYTES + 1)
    if len(data) > MAX_SECRET_FILE_BYTES:
        raise ValueError(f"password file {path} is larger than {MAX_SECRET_FILE_BYTES} bytes")
    text = data.decode("utf-8").rstrip("\r\n")
    if not text:
        raise ValueError(f"password file {path} is empty")
    return text


def _from_docker_config(path: Path, host: str) -> dict[str, str] | None:
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_SECRET_FILE_BYTES + 1)
    except FileNotFoundError:
        return None
    if len(raw) > MAX_SECRET_FILE_BYTES:
        raise ValueError(f"{path} is larger than {MAX_SECRET_FILE_BYTES} bytes")
    try:
        auths = json.loads(raw).get("auths") or {}
    except (ValueError, AttributeError):
        raise ValueError(f"{path} is not a Docker config.json (JSON with an 'auths' table)") from None
    keys = DOCKER_HUB_KEYS if host in DOCKER_HUB_KEYS else (host, f"https://{host}", f"http://{host}")
    for key in keys:
        entry = auths.get(key)
        if not isinstance(entry, dict):
            continue
        if isinstance(entry.get("auth"), str) and entry["auth"]:
            try:
                user, sep, password = base64.b64decode(entry["auth"], validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise ValueError(f"{path}: the auth of {key} is not base64 of user:password") from None
            if sep:
                return {"username": user, "password": password, "serveraddress": host}
        if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
            return {"username": entry["username"], "password": entry["password"], "serveraddress": host}
    return None


def images_config(table: Any) -> ImagesConfig:
    """The `[images]` table, validated; ConfigError names `images.FIELD`."""
    if not isinstance(table, dict):
        raise ConfigError("images", f"expected a table, got {toml_value(table)}")
    known = ("max_concurrent_pulls", "pull_timeout_s", "max_peer_serves", "docker_config", "registries")
    for key in table:
        if key not in known:
            raise ConfigError(f"images.{key}", f"unknown setting; known: {', '.join(known)}")
    kw: dict[str, Any] = {}
    if (n := table.get("max_concurrent_pulls")) is not None:
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 64:
            raise ConfigError("images.max_concurrent_pulls", f"must be an integer 1..64, got {toml_value(n)}")
        kw["max_concurrent_pulls"] = n
    if (n := table.get("max_peer_serves")) is not None:
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 64:
            raise ConfigError("images.max_peer_serves", f"must be an integer 0..64, got {toml_value(n)}")
        kw["max_peer_serves"] = n
    if (t := table.get("pull_timeout_s")) is not None:
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t <= 86400:
            raise ConfigError("images.pull_timeout_s", f"must be seconds in (0, 86400], got {toml_value(t)}")
        kw["pull_timeout_s"] = float(t)
    if (p := table.get("docker_config")) is not None:
        if not isinstance(p, str) or not p:
            raise ConfigError("images.docker_config", f"must be a file path, got {toml_value(p)}")
        kw["docker_config"] = Path(p)
    regs = table.get("registries")
    if regs is not None:
        if not isinstance(regs, dict) or len(regs) > MAX_REGISTRIES:
            raise ConfigError("images.registries", f"must be a table of at most {MAX_REGISTRIES} registry hosts")
        kw["registries"] = tuple(sorted((host, _login(host, entry)) for host, entry in regs.items()))
    return ImagesConfig(**kw)


def _login(host: str, entry: Any) -> RegistryLogin:
    path = f"images.registries.{host}"
    if not HOST_RE.fullmatch(host):
        raise ConfigError(path, "must be a registry host, like registry.example:5000")
    if not isinstance(entry, dict):
        raise ConfigError(path, f"expected a table with username and password_file, got {toml_value(entry)}")
    if "password" in entry:
        raise ConfigError(f"{path}.password", "passwords are not written in the config: put it in a file "
                                              "readable by the agent only and set password_file")
    for key in entry:
        if key not in ("username", "password_file"):
            raise ConfigError(f"{path}.{key}", "unknown setting; known: username, password_file")
    user, pw = entry.get("username"), entry.get("password_file")
    if not isinstance(user, str) or not user:
        raise ConfigError(f"{path}.username", "required: a non-empty string")
    if not isinstance(pw, str) or not pw:
        raise ConfigError(f"{path}.password_file", "required: the path of a file holding the password")
    return RegistryLogin(user, Path(pw))
