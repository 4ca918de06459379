"""The code `dataclasses` generates, compiled once and kept beside our bytecode.

How this works: `@dataclass` writes each class's __init__, __repr__, __eq__,
__hash__, __setattr__... as Python source and exec()s it; the compiler run
that way is about 30 % of the instructions of `import node.agent.agent`
(~115 dataclasses in gossip, auction and node.core; callgrind,
docs/benchmarks.md, agent start).  The source depends only on the fields
and the options, so it compiles to the same code at every start.
`install()` (by `shoal agent`, before its imports) replaces the name `exec`
in the dataclasses module (a module global, which shadows the builtin there
and nowhere else) with a lookup in a table of compiled code: a file in
this package's bytecode directory (`__pycache__`, or under
PYTHONPYCACHEPREFIX) holding, sorted by a digest of each source, the code
in marshal form; a hit unmarshals that one entry, a miss compiles as exec
would (no `from __future__` flags: dataclasses has none).  `save()` (once
the agent serves) writes the file again, atomically, if this start compiled
anything, then frees the table and gives dataclasses the builtin back.

attrs (trio's classes, and its own) does the same with `compile(script, filename,
"exec")` in attr._make, about 8 % of the CPU of that import (51 classes,
and 31 more while `import attr` runs): its `compile` name is routed through
the same table (put into attr._make's namespace before its body runs, by a
meta path finder that `install()` puts first and the import removes), keyed by the filename
(it names the class) and the source.  One part of that source changes at
every start: the `__hash__` attrs writes hashes a constant,
hash(a string), which differs per process (PYTHONHASHSEED).  So that
literal is replaced by a sentinel of the same length (`hash_sentinel`)
before the lookup, and the real value put back into the code's constants
after it: one entry per length and sign of the literal, those of 17 to 19
digits (all but 0.1 % of them) compiled together.

Memory: the file is read as one buffer and searched in place, and nothing
per entry is kept between lookups, so start-up holds no table of Python
objects that would leave the heap fragmented once freed (resident memory
is as without the cache).  A missing, unreadable, corrupt or other-version
file is only a miss; nothing is written when bytecode is not
(PYTHONDONTWRITEBYTECODE) or the directory is read-only.  Bounded:
MAX_ENTRIES entries (those this start did not use go first), MAX_FILE_BYTES.
The file is trusted as the bytecode beside it is: whoever may write one may
write the other.
"""

from __future__ import annotations

import builtins
import dataclasses
import hashlib
import importlib.machinery
import importlib.util
import marshal
import __future__
import os
import re
import struct
import sys
from pathlib import Path
from types import CodeType
from typing import Any

MAX_ENTRIES = 4096  # distinct sources; an agent's start uses about 770
MAX_FILE_BYTES = 16 << 20
FORMAT = b"dcc1"
DIGEST_BYTES = 16
RECORD = struct.Struct(f"<{DIGEST_BYTES}sII")  # digest, offset of the marshalled code, its length
HEADER = struct.Struct("<4s4sI")  # the interpreter's bytecode magic, FORMAT, entry count
# attrs' __hash__: `hash((` then, on the next line, hash(<a string>) as a literal.
ATTRS_HASH_LITERAL = re.compile(r"hash\(\(\n *(-?\d{8,}),\n")


def hash_sentinel(literal: str) -> int:
    """What stands for that literal in the cached source and code: as many
    characters, so that the code's column table is the literal's (no class
    hashes a run of 7s; shorter literals are not cached)."""
    return -int("7" * (len(literal) - 1)) if literal.startswith("-") else int("7" * len(literal))


class _State:
    def __init__(self, buf: bytes, count: int) -> None:
        self.buf = buf
        self.count = count
        self.used = bytearray(count)  # 1: looked up by this start
        self.compiled: dict[bytes, CodeType] = {}  # misses: written by save()


_state: _State | None = None


def cache_path() -> Path | None:
    """Where the file lives: next to this module's bytecode, tagged with the
    interpreter's bytecode version (its code objects are only valid there)."""
    try:
        pyc = importlib.util.cache_from_source(__file__)
    except (NotImplementedError, ValueError):  # no bytecode caching in this interpreter
        return None
    return Path(pyc).with_name(f"dataclass-code.{sys.implementation.cache_tag}.bin")


def digest(source: str) -> bytes:
    return hashlib.blake2b(source.encode("utf-8", "surrogatepass"), digest_size=DIGEST_BYTES).digest()


def _find(st: _State, key: bytes) -> int:
    """Index of `key` in the sorted records, or -1 (a binary search in the buffer)."""
    lo, hi = 0, st.count
    while lo < hi:
        mid = (lo + hi) // 2
        at = HEADER.size + mid * RECORD.size
        probe = st.buf[at:at + DIGEST_BYTES]
        if probe < key:
            lo = mid + 1
        elif probe > key:
            hi = mid
        else:
            return mid
    return -1


def _record(st: _State, i: int) -> tuple[bytes, memoryview]:
    key, offset, length = RECORD.unpack_from(st.buf, HEADER.size + i * RECORD.size)
    return key, memoryview(st.buf)[offset:offset + length]


def _code(st: _State, source: str, filename: str = "<string>", flags: int = 0) -> CodeType:
    key = digest(source if filename == "<string>" else f"{filename}\0{source}")
    i = _find(st, key)
    if i >= 0:
        try:
            code = marshal.loads(_record(st, i)[1])
        except (ValueError, EOFError, TypeError):
            code = None
        if isinstance(code, CodeType):
            st.used[i] = 1
            return code
    code = st.compiled.get(key)
    if code is None:
        code = builtins.compile(source, filename, "exec", flags, dont_inherit=True)
        if len(st.compiled) < MAX_ENTRIES:
            st.compiled[key] = code
    return code


def _exec(source: Any, globals: Any = None, locals: Any = None, /) -> None:
    st = _state
    if st is not None and isinstance(source, str):
        source = _code(st, source)
    builtins.exec(source, globals, locals)


def _attrs_compiler(module: Any) -> Any:
    """A `compile` for attr._make's globals: its exec-mode compiles of a
    source string go through the table, anything else to the builtin."""

    def compile(source: Any, filename: Any, mode: str, *args: Any, **kw: Any) -> Any:
        st = _state
        if st is None or args or kw or mode != "exec" or not isinstance(source, str) or not isinstance(filename, str):
            return builtins.compile(source, filename, mode, *args, **kw)
        # The flags attrs compiles with (its module's `from __future__`),
        # read at the call: this may be installed before that line runs.
        future = vars(module).get("annotations")
        flags = future.compiler_flag if future is __future__.annotations else 0
        m = ATTRS_HASH_LITERAL.search(source) if "def __hash__" in source else None
        if m is None:
            return _code(st, source, filename, flags)
        head, tail = source[:m.start(1)], source[m.end(1):]
        sentinel = hash_sentinel(m[1])
        misses = len(st.compiled)
        code = _code(st, f"{head}{sentinel}{tail}", filename, flags)
        if len(st.compiled) > misses:  # new here: the next starts' literals will mostly be 17-19 digits
            for digits in (19, 18, 17):
                for sign in ("", "-"):
                    _code(st, f"{head}{hash_sentinel(sign + '1' * digits)}{tail}", filename, flags)
        return _with_const(code, sentinel, int(m[1]))

    return compile


def _with_const(code: CodeType, old: int, new: int) -> CodeType:
    """`code` with the int constant `old` replaced by `new`, in nested code
    and in constant tuples too (a class without fields hashes `(literal,)`,
    which the compiler folds into one constant)."""
    consts = tuple(_swapped(c, old, new) for c in code.co_consts)
    return code.replace(co_consts=consts) if any(a is not b for a, b in zip(consts, code.co_consts)) else code


def _swapped(c: Any, old: int, new: int) -> Any:
    if type(c) is int and c == old:
        return new
    if isinstance(c, CodeType):
        return _with_const(c, old, new)
    if type(c) is tuple:
        items = tuple(_swapped(i, old, new) for i in c)
        return items if any(a is not b for a, b in zip(items, c)) else c
    return c


def _read(path: Path) -> tuple[bytes, int]:
    try:
        with open(path, "rb") as f:
            buf = f.read(MAX_FILE_BYTES + 1)
        magic, fmt, count = HEADER.unpack_from(buf)
    except (OSError, struct.error):
        return b"", 0
    if (len(buf) > MAX_FILE_BYTES or magic != importlib.util.MAGIC_NUMBER or fmt != FORMAT
            or HEADER.size + count * RECORD.size > len(buf)):
        return b"", 0
    return buf, count


def install() -> None:
    """Read the file and route dataclasses' exec through it."""
    global _state
    if _state is not None:
        return
    path = cache_path()
    buf, count = _read(path) if path is not None else (b"", 0)
    _state = _State(buf, count)
    dataclasses.exec = _exec  # type: ignore[attr-defined]
    attrs_make = sys.modules.get("attr._make")
    if attrs_make is not None:
        attrs_make.compile = _attrs_compiler(attrs_make)  # type: ignore[attr-defined]
    elif _AttrsOnLoad not in sys.meta_path:
        sys.meta_path.insert(0, _AttrsOnLoad)  # type: ignore[arg-type]


class _AttrsOnLoad:
    """A meta path finder for attr._make only, until it is imported: the
    module gets our `compile` in its namespace before its body runs, so the
    ~30 classes attrs itself defines while `import attr` runs (trio imports
    it) come from the table too, not only trio's."""

    @staticmethod
    def find_spec(fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != "attr._make":
            return None
        sys.meta_path.remove(_AttrsOnLoad)  # type: ignore[arg-type]
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        run_body = loader.exec_module

        def exec_module(module: Any) -> None:
            if module.__name__ == fullname:  # a loader may serve more modules (a zip's)
                del loader.exec_module  # once: the loader's own method again
                module.compile = _attrs_compiler(module)
            run_body(module)

        loader.exec_module = exec_module
        return spec


def save() -> None:
    """Write the file if this start compiled something, then free the buffer
    and give dataclasses the builtin exec back: what is imported later (at
    a first scrape, say) compiles as without this module."""
    global _state
    st = _state
    if st is None:
        return
    _state = None
    if _AttrsOnLoad in sys.meta_path:
        sys.meta_path.remove(_AttrsOnLoad)  # type: ignore[arg-type]
    if vars(dataclasses).get("exec") is _exec:
        del dataclasses.exec  # type: ignore[attr-defined]
    attrs_make = sys.modules.get("attr._make")
    if attrs_make is not None and getattr(vars(attrs_make).get("compile"), "__module__", None) == __name__:
        del attrs_make.compile  # type: ignore[attr-defined]
    path = cache_path()
    if path is None or not st.compiled or sys.dont_write_bytecode:
        return
    entries: dict[bytes, bytes | memoryview] = {k: marshal.dumps(c) for k, c in st.compiled.items()}
    for used in (1, 0):  # what this start used first, then the rest while there is room
        for i in range(st.count):
            if st.used[i] == used and len(entries) < MAX_ENTRIES:
                key, blob = _record(st, i)
                entries.setdefault(key, blob)
    _write(path, entries)


def _write(path: Path, entries: dict[bytes, bytes | memoryview]) -> None:
    keys = sorted(entries)
    offset = HEADER.size + len(keys) * RECORD.size
    index, blobs = [], []
    for key in keys:
        blob = entries[key]
        index.append(RECORD.pack(key, offset, len(blob)))
        blobs.append(blob)
        offset += len(blob)
    if offset > MAX_FILE_BYTES:
        return
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(HEADER.pack(importlib.util.MAGIC_NUMBER, FORMAT, len(keys)))
            f.writelines(index)
            f.writelines(blobs)
        os.replace(tmp, path)
    except OSError:  # a read-only install: every start compiles, as without this module
        try:
            tmp.unlink()
        except OSError:
            pass
