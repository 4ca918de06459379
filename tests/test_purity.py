"""The pure cores (gossip/, auction/, node/core/) stay pure: no I/O, no clock,
no global randomness.

How this works: every module under gossip/, auction/ and node/core/ is parsed with `ast`
(never imported) and its import statements and calls are checked:

- no import of a module that does I/O, reads a clock, spawns concurrency or
  draws entropy from the OS (FORBIDDEN_MODULES; `os` is in the list because
  `os.urandom` would make the simulator's runs unrepeatable);
- no module-level `random.*` calls (`random.random()`, `random.choice(...)`,
  `from random import choice`): randomness comes from a `random.Random` that the
  driver hands in, so importing `random` for that type is fine;
- no builtins that do I/O or import dynamically (`open`, `input`, `__import__`);
- gossip/ and auction/ import nothing from each other or from node/; node/core/
  imports only gossip/, auction/ and itself (CORE_MAY_IMPORT).

Single pure modules outside those packages (PURE_MODULES, e.g. the runtime's
decision, node/runtime/decision.py) are held to the same rules, and import only
what CORE_MAY_IMPORT allows them.

The simulator replays a seed only if all of this holds (architecture.md).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Each pure core, by dotted package name; its folder is the dots as slashes.
CORES = ("gossip", "auction", "node.core")
# Single pure modules, by dotted name; the file is the dots as slashes + ".py".
PURE_MODULES = ("node.runtime.decision", "node.runtime.stall", "node.runtime.pull_progress",
                "node.runtime.spread_rule")

FORBIDDEN_MODULES = {
    # named in the architecture: I/O, clocks, OS entropy, concurrency
    "trio", "socket", "time", "asyncio", "docker", "psutil", "select",
    "threading", "subprocess", "os",
    # the same things under other names
    "secrets",          # os.urandom
    "selectors", "signal", "multiprocessing", "concurrent", "anyio", "sniffio",
    "httpx", "importlib",
}
# What a core may take from the `random` module: the type of the rng it is given.
RANDOM_ALLOWED = {"Random"}
FORBIDDEN_BUILTIN_CALLS = {"open", "input", "__import__", "breakpoint"}
# The project's packages each core may import (anything else of the project's is
# refused): the dependency direction is node -> node.core -> {gossip, auction}.
PROJECT_PACKAGES = {"gossip", "auction", "node"}
CORE_MAY_IMPORT = {"gossip": ("gossip",), "auction": ("auction",),
                   "node.core": ("gossip", "auction", "node.core"),
                   "node.runtime.decision": ("auction", "node.runtime.decision"),
                   "node.runtime.stall": ("node.runtime.stall",),
                   "node.runtime.pull_progress": ("node.core", "node.runtime.pull_progress"),
                   "node.runtime.spread_rule": ("node.runtime.spread_rule",)}


@dataclass(frozen=True)
class Module:
    core: str
    path: Path
    dotted: str  # e.g. "gossip.wire" or "gossip" for __init__.py

    @property
    def package(self) -> str:
        # The package a relative import in this file is resolved against.
        if self.path.name == "__init__.py":
            return self.dotted
        return self.dotted.rpartition(".")[0]

    def __str__(self) -> str:
        try:
            return str(self.path.relative_to(ROOT))
        except ValueError:
            return str(self.path)


def core_modules() -> list[Module]:
    mods = []
    for core in CORES:
        for path in sorted((ROOT / core.replace(".", "/")).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            mods.append(Module(core, path, ".".join(parts)))
    for dotted in PURE_MODULES:
        mods.append(Module(dotted, ROOT / (dotted.replace(".", "/") + ".py"), dotted))
    return mods


MODULES = core_modules()


def resolve(mod: Module, node: ast.ImportFrom) -> str:
    """The absolute dotted name a `from X import ...` statement refers to."""
    if node.level == 0:
        return node.module or ""
    base = mod.package.split(".")
    base = base[: max(0, len(base) - (node.level - 1))]
    return ".".join(base + ([node.module] if node.module else []))


def imported_names(mod: Module, tree: ast.AST) -> list[tuple[int, str]]:
    """(line, absolute module name) for every import in the file, including
    `from pkg import sub` as pkg.sub."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append((node.lineno, alias.name))
        elif isinstance(node, ast.ImportFrom):
            target = resolve(mod, node)
            found.append((node.lineno, target))
            for alias in node.names:
                if alias.name != "*":
                    found.append((node.lineno, f"{target}.{alias.name}" if target else alias.name))
    return found


def top(name: str) -> str:
    return name.split(".", 1)[0]


def violations(mod: Module) -> list[str]:
    tree = ast.parse(mod.path.read_text(encoding="utf-8"), filename=str(mod.path))
    problems: list[str] = []

    for line, name in imported_names(mod, tree):
        if top(name) in FORBIDDEN_MODULES:
            problems.append(f"{mod}:{line}: imports {name} (I/O, clock or OS entropy in a pure core)")
        if top(name) in PROJECT_PACKAGES and not any(
                name == ok or name.startswith(ok + ".") for ok in CORE_MAY_IMPORT[mod.core]):
            problems.append(f"{mod}:{line}: imports {name} ({mod.core} may import only "
                            f"{', '.join(CORE_MAY_IMPORT[mod.core])})")

    # Names bound to the `random` module in this file (import random [as r]).
    random_aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "random":
                    random_aliases.add(alias.asname or "random")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "random":
            for alias in node.names:
                if alias.name not in RANDOM_ALLOWED:
                    problems.append(
                        f"{mod}:{node.lineno}: `from random import {alias.name}` uses the global "
                        "rng; take a random.Random from the driver instead")

    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in random_aliases and node.attr not in RANDOM_ALLOWED):
            problems.append(
                f"{mod}:{node.lineno}: {node.value.id}.{node.attr} uses the module-level rng; "
                "use the random.Random the driver passes in")
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in FORBIDDEN_BUILTIN_CALLS):
            problems.append(f"{mod}:{node.lineno}: calls {node.func.id}() in a pure core")
    return problems


def test_cores_exist():
    # Guard against this file silently checking nothing after a rename.
    for core in CORES:
        assert (ROOT / core.replace(".", "/") / "__init__.py").is_file(), f"{core}/__init__.py missing"
        assert any(m.core == core and m.path.name != "__init__.py" for m in MODULES), core
    for dotted in PURE_MODULES:
        assert (ROOT / (dotted.replace(".", "/") + ".py")).is_file(), f"{dotted} missing"


@pytest.mark.parametrize("mod", MODULES, ids=str)
def test_core_module_is_pure(mod: Module):
    problems = violations(mod)
    assert not problems, "\n".join(problems)


# ---- the checker itself ------------------------------------------------------

def check_source(tmp_path: Path, source: str, core: str = "gossip", name: str = "m.py") -> list[str]:
    pkg = tmp_path / core.replace(".", "/")
    pkg.mkdir(parents=True, exist_ok=True)
    path = pkg / name
    path.write_text(source)
    dotted = core if name == "__init__.py" else f"{core}.{name[:-3]}"
    return violations(Module(core, path, dotted))


@pytest.mark.parametrize("source", [
    "import os",
    "import os.path",
    "from os import urandom",
    "import time as t",
    "from time import monotonic",
    "import trio",
    "import socket",
    "import asyncio",
    "import subprocess",
    "import threading",
    "import select",
    "import docker",
    "import psutil",
    "import secrets",
    "import random\nx = random.random()",
    "import random\nrandom.choice([1, 2])",
    "import random as r\nr.shuffle([])",
    "from random import choice",
    "import random\nrandom.seed(1)",
    "import random\nrng = random.SystemRandom()",
    "def f():\n    import time\n    return time.time()",
    "from auction import spec",
    "import node.agent.agent",
    "from node import agent",
    "from .. import node",
    "from ..auction import spec",
    "open('/etc/passwd')",
])
def test_checker_rejects(tmp_path, source):
    assert check_source(tmp_path, source), f"checker accepted impure code: {source!r}"


@pytest.mark.parametrize("source", [
    "import random\ndef f(rng: random.Random):\n    return rng.random()",
    "from random import Random\nrng = Random(1)",
    "import math, enum, dataclasses, struct, zlib, hashlib, hmac",
    "from gossip import config",
    "from . import config",
    "from .config import preset",
    "import msgpack",
    "from cryptography.hazmat.primitives.ciphers.aead import AESGCM",
    "self_open = 1\nclass X:\n    def open(self):\n        pass\nX().open()",
])
def test_checker_accepts(tmp_path, source):
    assert check_source(tmp_path, source) == []


def test_checker_sees_auction_importing_gossip(tmp_path):
    assert check_source(tmp_path, "from gossip.events import Address", core="auction")
    assert check_source(tmp_path, "from ..gossip import events", core="auction")


def test_checker_holds_node_core_to_its_own_imports(tmp_path):
    assert check_source(tmp_path, "from node.agent import config", core="node.core")
    assert check_source(tmp_path, "from node.state.persist import EntryStore", core="node.core")
    assert check_source(tmp_path, "from .. import api", core="node.core")
    assert check_source(tmp_path, "import time", core="node.core")
    assert check_source(tmp_path, "from gossip.lww import LwwMap\nfrom auction.claims import Claim\n"
                                  "from node.core import wire\nfrom . import hlc", core="node.core") == []


def test_checker_holds_a_pure_module_to_auction_and_itself(tmp_path):
    path = tmp_path / "node" / "runtime" / "decision.py"
    path.parent.mkdir(parents=True)

    def check(source: str) -> list[str]:
        path.write_text(source)
        return violations(Module("node.runtime.decision", path, "node.runtime.decision"))

    assert check("from node.runtime.engine import Engine")
    assert check("from . import docker")
    assert check("from gossip.lww import LwwMap")
    assert check("from node.core import wire")
    assert check("import trio")
    assert check("import re\nfrom auction.spec import RestartPolicy") == []
