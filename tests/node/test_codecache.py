"""The compiled-code cache of `shoal agent` (node.agent.codecache).

What a user would notice if it broke: classes that behave differently
when their methods come from the cache (the code must be exactly what
dataclasses and attrs compile), an agent that fails to start on a damaged cache
file, or a cache that is never used (no faster start).  Each check runs in
a fresh interpreter with its own bytecode directory (PYTHONPYCACHEPREFIX).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.node.agentproc import running_agent

REPO = Path(__file__).resolve().parents[2]

# Imports what `shoal agent` imports before it gossips (gossip, auction and
# node.core: the dataclasses), with or without the cache, and prints a
# digest of every generated method's code (bytecode, constants, names,
# flags, line table, annotations...) per class.
PROBE = """
import dataclasses, hashlib, json, sys, types
FIELDS = ("co_argcount", "co_posonlyargcount", "co_kwonlyargcount", "co_nlocals", "co_stacksize", "co_flags",
          "co_code", "co_names", "co_varnames", "co_freevars", "co_cellvars", "co_filename", "co_name",
          "co_qualname", "co_firstlineno", "co_linetable", "co_exceptiontable")
def canon(code):
    consts = tuple(canon(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts)
    return repr(tuple(getattr(code, f) for f in FIELDS) + consts)
use = sys.argv[1] == "cache"
if use:
    from node.agent import codecache
    codecache.install()
import node.agent.agent
stats = {}
if use:
    st = codecache._state
    stats = {"entries": st.count, "hits": sum(st.used), "compiled": len(st.compiled)}
    codecache.save()
    stats["exec_restored"] = "exec" not in vars(dataclasses) and "compile" not in vars(sys.modules["attr._make"])
methods = {}
for name, mod in sorted(sys.modules.items()):
    if not name.split(".")[0] in ("gossip", "auction", "node", "trio", "outcome", "attr"):
        continue
    for cls in list(vars(mod).values()):
        if not isinstance(cls, type) or cls.__module__ != name:
            continue
        if dataclasses.is_dataclass(cls) or hasattr(cls, "__attrs_attrs__"):
            for attr, fn in sorted(vars(cls).items()):
                code = getattr(fn, "__code__", None)
                if code is not None and code.co_filename.startswith(("<string>", "<attrs generated")):
                    blob = (canon(code) + repr(getattr(fn, "__annotations__", None))).encode()
                    methods[f"{name}.{cls.__qualname__}.{attr}"] = hashlib.sha256(blob).hexdigest()
print(json.dumps({"stats": stats, "methods": methods}))
"""


def probe(tmp_path: Path, mode: str, **env: str) -> dict[str, Any]:
    full_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    # One hash seed unless a test says otherwise: attrs' __hash__ code
    # depends on it (see the first test).
    full_env.update({"PYTHONPATH": str(REPO), "PYTHONPYCACHEPREFIX": str(tmp_path / "pycache"),
                     "PYTHONHASHSEED": "0", **env})
    proc = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=REPO, env=full_env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def cache_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "pycache").rglob("dataclass-code.*.bin"))


def test_cached_classes_have_exactly_the_code_dataclasses_and_attrs_compile(tmp_path: Path) -> None:
    plain = probe(tmp_path, "plain", PYTHONHASHSEED="1")
    first = probe(tmp_path, "cache", PYTHONHASHSEED="1")   # compiles everything, writes the file
    second = probe(tmp_path, "cache", PYTHONHASHSEED="1")  # everything from the file
    hashed = sum(".__hash__" in m and m.startswith("trio.") for m in plain["methods"])
    assert len(plain["methods"]) > 400 and hashed > 10
    assert sum(m.startswith("attr.") for m in plain["methods"]) > 20  # attrs' own, built while it imports
    assert first["stats"]["entries"] == 0 and first["stats"]["compiled"] > 300
    # Everything from the file (which also holds attrs' __hash__ for other seeds, below).
    assert second["stats"]["compiled"] == 0 and 300 < second["stats"]["hits"] < first["stats"]["compiled"]
    assert first["methods"] == plain["methods"]
    assert second["methods"] == plain["methods"]
    assert second["stats"]["exec_restored"]
    # attrs' __hash__ hashes hash(a string), which changes with the hash
    # seed: under another seed the code from the file must be that seed's,
    # none compiled again but a literal under 17 digits (1 in 1,000).
    other = probe(tmp_path, "cache", PYTHONHASHSEED="2")
    assert other["methods"] == probe(tmp_path, "plain", PYTHONHASHSEED="2")["methods"] != plain["methods"]
    assert other["stats"]["compiled"] <= 1
    assert other["stats"]["hits"] + other["stats"]["compiled"] == second["stats"]["hits"]


def test_a_damaged_file_is_only_a_miss_and_is_rewritten(tmp_path: Path) -> None:
    first = probe(tmp_path, "cache")
    [path] = cache_files(tmp_path)
    data = path.read_bytes()
    for damaged in (b"", data[:100], data[:len(data) // 2], b"\0" * len(data)):
        path.write_bytes(damaged)
        again = probe(tmp_path, "cache")
        assert again["methods"] == first["methods"]
    assert probe(tmp_path, "cache")["stats"]["compiled"] == 0  # rewritten whole by the last run


def test_nothing_is_written_when_bytecode_is_not(tmp_path: Path) -> None:
    probe(tmp_path, "cache", PYTHONDONTWRITEBYTECODE="1")
    assert cache_files(tmp_path) == []


def test_shoal_agent_writes_the_cache_before_it_says_it_serves(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    monkeypatch.setenv("PYTHONPYCACHEPREFIX", str(tmp_path / "pycache"))
    with running_agent(tmp_path, "cc", 'dns_bind = "off"\n') as info:
        assert info["api"].startswith("http://127.0.0.1:")
        assert len(cache_files(tmp_path)) == 1
