"""Third-party stacks imported without the standard-library modules an agent never runs.

How this works: hypercorn and starlette import, at their top, modules that
an agent (a trio program serving its API with them) never calls: asyncio
(starlette before Python 3.13 takes `iscoroutinefunction` from it),
http.client with the email parser (starlette, for a status code's phrase in
an HTTPException without a detail), logging.config (hypercorn, for a log
configuration file), multiprocessing (hypercorn: the type of a multi-worker
shutdown event, in annotations), html (starlette's debug page), tomllib
(hypercorn's configuration file), http.cookies and email.utils (starlette,
for cookies and file responses), mimetypes (starlette, a file response's
type); HTTP/2 (h2, with hpack, hyperframe
and priority), which hypercorn serves to a client that asks for it (TLS
with ALPN h2, or h2c), rarely if ever an agent's; and WebSocket (wsproto,
through hypercorn's WSStream), for an upgrade request the API has no route
for: HTTP_STACK.  httpx
imports its command line, with click and pygments: HTTPX.  Together about
5.5 MiB of an idle agent's 43, and 2 MiB more where httpx is loaded
(docs/benchmarks.md, "Idle memory").  The docker SDK (node.runtime.engine:
`docker.APIClient` and `docker.errors`) imports its high-level client
(docker.client with docker.models, docker.context), requests' character
detection (charset_normalizer or chardet: only for a body without a
charset, which the engine does not send), importlib.metadata (urllib3's
HTTP/2, for h2's version), zipfile (requests, importlib.resources: CA
bundles in zip archives), tarfile (build contexts), calendar, stringprep
and mimetypes (dates of cookies and mail headers, host names that are not
ASCII, files in multipart forms) and, where installed, paramiko (ssh://
hosts): docker_sdk(), about 4.5 MiB (and, with trio_parts(), a Docker
agent starts with its table of interned strings at 32,768 slots, not
65,536, until the names msgpack interns as it decodes gossip fill the last
~180: 0.46 MiB for its first minutes, 9-20 in an idle 3-agent cluster,
docs/benchmarks.md).  trio itself
(node.cli.agent_run) imports DTLS, child processes, async files and paths
and TLS streams, and, through ctypes.util (for naming its threads), bz2,
lzma and locale, which an agent never runs: trio_parts(), about 0.9 MiB
(docs/benchmarks.md, "Idle memory: trio's unused parts").

OpenSSL (libcrypto and libssl, with the ssl module some 4.6 MiB of an idle
Docker agent) is loaded only by an agent that uses TLS: one serving its API
over plain HTTP and reaching its engine without TLS never maps it.
hypercorn.config takes ssl's names for a TLS context such an API never
makes: HYPERCORN_SSL gives them as `_UsedLater`, the real ones at their
first use (node.agent.agent asks for it only without TLS; an agent serving
TLS has loaded ssl before, node.api.listen).  The docker SDK's requests,
urllib3, http.client and urllib.request each have a branch for a Python
built without ssl: `docker_sdk(tls=False)` (node.agent.runtime_link, for a
unix://, tcp:// or http:// engine, through `import_docker_sdk_without_tls`)
makes ssl ABSENT for their import, so they take it for the life of the
process; urllib.request's HTTPSHandler is then a stand-in that refuses to
be used (prometheus_client names it at its import).  hashlib and hmac load OpenSSL's
hashes at their own import: `import_hashes_without_openssl()` (`shoal
agent`, first thing) gives them CPython's own, the same digests
(docs/benchmarks.md, "Idle memory: no OpenSSL without TLS").

`import_module(name, stand_ins)` imports `name` (node.api.server, httpx, trio)
with a meta path finder first in sys.meta_path that answers, for the
modules of `stand_ins` not loaded yet and in the calling thread only, with
a stand-in: a module holding only the names its importers take with
`from ... import` (the values below), made without running the real
module's code.  When the import is done the finder is removed and the
stand-ins leave sys.modules, so any later `import asyncio` (anywhere) loads
the real module.  An importer that keeps the module itself (starlette's
`http.client`, `html`, `http.cookies`; hypercorn's `tomllib`, `h2`) keeps
the stand-in: the first name it asks of it imports the real module and
answers from it (or the package's submodule of that name), so a 404's
phrase, a cookie or an HTTP/2 connection still work, the first one a
little later (importing h2 then takes about 20 ms of the agent's thread).
Another thread that imports one of them during that import (about 0.1 s,
once per agent) gets a stand-in too, which waits for the import to finish
(at most WINDOW_WAIT_S) and answers the same way.  A name given as
`Deferred` is one its importer only re-exports (the docker package's
DockerClient, from_env, Context, ...; trio's Process, Path, SSLStream,
...): when the import is done it leaves the importer's namespace, and the
importer's module `__getattr__` brings the real one at first use
(`docker.DockerClient` is the class itself; `trio.Process` too, renamed
as trio's import renames what it re-exports).  Such a name is not in the
importer's `dir()` before its first use, and only a name the importer does
not use itself can be deferred (a module-level function's global lookup
does not go through `__getattr__`).

The values given: starlette gets `inspect.iscoroutinefunction` for
asyncio's (what starlette uses from Python 3.13; the two differ only for
functions marked by asyncio's removed @coroutine decorator, and for
unittest.mock's AsyncMock); the other functions (and multiprocessing's
Event) import the real module when called; requests gets the version of
the installed charset_normalizer (or chardet) from its version file, for
its compatibility check.  A name of these modules asked during the import
that is not given here raises AttributeError, so the import fails at once
(a newer hypercorn, starlette or docker SDK that needs one:
tests/node/test_lean_imports.py, tests/node/test_lean_docker.py).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
import threading
import types
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec


def _imported_when_called(module: str, name: str) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"{module}.{name}, its module imported at the first call"
    return call


class _UsedLater:
    """A name its importer uses only on a path this agent does not run (a
    TLS context, when the API serves plain HTTP): the real one at its first
    use, attribute or call (`Purpose.CLIENT_AUTH`, `VerifyMode(2)`)."""

    __slots__ = ("_module", "_name")

    def __init__(self, module: str, name: str) -> None:
        self._module, self._name = module, name

    def _real(self) -> Any:
        return getattr(importlib.import_module(self._module), self._name)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._real(), attr)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._real()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"{self._module}.{self._name}, its module imported at the first use"


# A module its importers are told is not there during the import (the
# import raises ModuleNotFoundError, in the importing thread only), so they
# take the branch they have for a Python built without it.
ABSENT: dict[str, Any] = {}

# module -> the names its importers take at import, and what they get.  For
# node.api.server (hypercorn, starlette):
HTTP_STACK: dict[str, dict[str, Any]] = {
    "asyncio": {"iscoroutinefunction": inspect.iscoroutinefunction},   # starlette._utils
    # starlette.exceptions: a status code's phrase, made as http.client makes it (which would load ssl)
    "http.client": {"responses": {v: v.phrase for v in HTTPStatus.__members__.values()}},
    "logging.config": {"dictConfig": _imported_when_called("logging.config", "dictConfig"),
                       "fileConfig": _imported_when_called("logging.config", "fileConfig")},  # hypercorn.logging
    "multiprocessing": {},                                             # the package of the next one
    "multiprocessing.synchronize": {"Event": _imported_when_called("multiprocessing.synchronize", "Event")},
    "html": {},                                                        # starlette.middleware.errors
    "tomllib": {},                                                     # hypercorn.config, hypercorn.logging
    "http.cookies": {},                                                # starlette.requests, .responses
    "email.utils": {"format_datetime": _imported_when_called("email.utils", "format_datetime"),
                    "formatdate": _imported_when_called("email.utils", "formatdate")},  # starlette.responses
    "mimetypes": {"guess_type": _imported_when_called("mimetypes", "guess_type")},  # starlette.responses (files)
    # HTTP/2 (h2 with hpack and hyperframe, priority): hypercorn.protocol.h2, hypercorn.typing;
    # used by a client that asks for HTTP/2 (TLS with ALPN h2, or h2c), loaded at its first connection
    "h2": {}, "h2.connection": {}, "h2.events": {}, "h2.exceptions": {}, "priority": {},
    # WebSocket (wsproto): hypercorn.protocol.h11 and .h2 make a WSStream for an upgrade request,
    # which no client of the agent's API sends (it has no WebSocket route); loaded at the first one
    "hypercorn.protocol.ws_stream": {"WSStream": _imported_when_called("hypercorn.protocol.ws_stream",
                                                                       "WSStream")},
}
# hypercorn.config takes these from ssl for its TLS context, which an API
# serving plain HTTP never makes: node.api.server imports with them only
# then (an agent serving TLS has loaded ssl before, node.api.listen).
HYPERCORN_SSL: dict[str, dict[str, Any]] = {
    "ssl": {name: _UsedLater("ssl", name) for name in (
        "create_default_context", "OP_NO_COMPRESSION", "Purpose", "SSLContext", "TLSVersion", "VerifyFlags",
        "VerifyMode")},
}
# For httpx (node.api.forward, node.agent.image_share): its command line, with click and pygments.
HTTPX: dict[str, dict[str, Any]] = {"httpx._main": {"main": _imported_when_called("httpx._main", "main")}}


class Deferred:
    """A name its importer only re-exports: the real one at first use (see the
    module docstring).  `fixup(importer, name, value)`, if given, is called
    then, for what the importer's own import would have done to the value
    (trio renames what it re-exports: `_trio_metadata`)."""

    __slots__ = ("fixup", "module", "name")

    def __init__(self, module: str, name: str,
                 fixup: Callable[[str, str, Any], None] | None = None) -> None:
        self.module, self.name, self.fixup = module, name, fixup

    def __repr__(self) -> str:
        return f"Deferred({self.module}.{self.name})"


def _trio_metadata(importer: str, name: str, value: Any) -> None:
    """What trio's import does to the names it re-exports (`trio.Process`,
    not `trio._subprocess.Process`, in reprs and tracebacks)."""
    from trio._util import fixup_module_metadata

    fixup_module_metadata(importer, {name: value})


def trio_parts() -> dict[str, dict[str, Any]]:
    """For trio (`shoal agent`, node.cli.agent_run): a function, as it looks
    up which compression modules the interpreter has."""
    def deferred(module: str, *names: str) -> dict[str, Any]:
        return {name: Deferred(module, name, _trio_metadata) for name in names}

    table: dict[str, dict[str, Any]] = {
        # re-exported by trio (and trio.lowlevel), never used by an agent:
        # DTLS, child processes, async files and paths, TLS streams (an agent
        # serving its API over TLS loads trio._ssl at its first connection)
        "trio._dtls": deferred("trio._dtls", "DTLSChannel", "DTLSChannelStatistics", "DTLSEndpoint"),
        "trio._subprocess": deferred("trio._subprocess", "Process", "run_process", "open_process"),
        "trio._file_io": deferred("trio._file_io", "open_file", "wrap_file"),
        "trio._path": deferred("trio._path", "Path", "PosixPath", "WindowsPath"),
        "trio._ssl": deferred("trio._ssl", "NeedHandshakeError", "SSLListener", "SSLStream"),
        "trio._highlevel_ssl_helpers": deferred("trio._highlevel_ssl_helpers", "open_ssl_over_tcp_listeners",
                                                "open_ssl_over_tcp_stream", "serve_ssl_over_tcp"),
    }
    # trio names its threads through ctypes, and ctypes.util imports shutil
    # and subprocess.  shutil imports bz2 and lzma only to see whether they
    # exist (`del bz2`): where their C parts do, say yes without loading them
    # (with libbz2, liblzma); tarfile and zipfile load them at use.
    for module in ("bz2", "lzma"):
        if importlib.util.find_spec(f"_{module}") is not None:
            table[module] = {}
    # subprocess asks locale (its table of ~1,000 locale aliases) for the
    # encoding of a child's text output only
    table["locale"] = {}
    return table


def docker_sdk(*, tls: bool = True) -> dict[str, dict[str, Any]]:
    """For the docker SDK (node.runtime.engine): a function, as it looks up
    what is installed (chardet, charset_normalizer, paramiko).  With
    `tls=False` (an agent whose engine is not reached over TLS,
    node.agent.runtime_link) ssl is absent for the SDK's import: requests,
    urllib3, http.client and urllib.request then take the branches they have
    for a Python without ssl, for the life of the process."""
    table: dict[str, dict[str, Any]] = {
        # docker/__init__ re-exports the high-level client (with docker.models) and contexts
        "docker.client": {name: Deferred("docker.client", name) for name in ("DockerClient", "from_context",
                                                                             "from_env")},
        "docker.context": {name: Deferred("docker.context", name) for name in ("Context", "ContextAPI")},
        # urllib3.http2 (h2's version when HTTP/2 is injected, which the SDK never does)
        "importlib.metadata": {"version": _imported_when_called("importlib.metadata", "version")},
        "zipfile": {},  # requests.utils, importlib.resources.readers: CA bundles inside zip archives
        "tarfile": {},  # docker.utils.build: build contexts
        # http.cookiejar, requests.cookies, email._parseaddr: expiry dates of
        # cookies and dates in mail headers, which the engine sends neither
        "calendar": {"timegm": _imported_when_called("calendar", "timegm")},
        "stringprep": {},  # encodings.idna (requests.models): nameprep of a host name that is not ASCII
        "mimetypes": {},   # urllib3.fields: the type of a file in a multipart form
    }
    # requests takes the first of these it can import, and checks its version
    for detector in ("chardet", "charset_normalizer"):
        if (version := _package_version(detector)) is not None:
            table[detector] = {"__version__": version}
    if importlib.util.find_spec("paramiko") is not None:
        table["paramiko"] = {}  # docker.transport.sshconn: ssh:// hosts, loaded at the first connection
    if not tls:
        table["ssl"] = ABSENT
        # requests, finding no ssl, would put pyOpenSSL (with cryptography) under urllib3 where installed
        table["urllib3.contrib.pyopenssl"] = ABSENT
    return table


class _NoHttpsHandler:
    """urllib.request's HTTPSHandler in a process whose urllib.request was
    imported with ssl absent (`import_docker_sdk_without_tls`): there is
    none, so this stands in for the importers that only name it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("HTTPS through urllib.request is not available in this agent: it was imported "
                           "without ssl (node.api.lean_imports.import_docker_sdk_without_tls)")


def import_docker_sdk_without_tls() -> types.ModuleType:
    """The docker SDK as an agent whose engine is not reached over TLS
    imports it (`docker_sdk(tls=False)`), and urllib.request made fit for
    the importers that name its HTTPSHandler without using it.
    prometheus_client's exposition imports it (for pushing to a gateway over
    TLS, which an agent never does): in such an agent urllib.request took
    its branch for a Python without ssl, has no HTTPSHandler, and the first
    scrape of /v1/metrics failed with an ImportError (a 500) -- on every
    agent with the docker runtime and the default engine socket."""
    docker = import_module("docker", docker_sdk(tls=False))
    import urllib.request

    if not hasattr(urllib.request, "HTTPSHandler"):
        urllib.request.HTTPSHandler = _NoHttpsHandler  # type: ignore[attr-defined,misc]
    return docker


def import_hashes_without_openssl() -> None:
    """hashlib and hmac with CPython's own hashes (`shoal agent`, before
    anything imports them): hashlib imports OpenSSL's (_hashlib, with
    libcrypto: some 3.4 MiB resident) at its own import, even to give out
    blake2b, which is CPython's either way; md5, sha1, sha256 and sha512 are
    CPython's too then, the same digests.  An agent that serves TLS, or
    reaches its engine over TLS, maps libcrypto for ssl anyway."""
    for module in ("hashlib", "hmac"):
        import_module(module, {"_hashlib": ABSENT})


def _package_version(package: str) -> str | None:
    """`package.__version__` as its version.py says, without importing the
    package (None: not installed, or no such file: import it as it is)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(spec.submodule_search_locations[0], "version.py")
    file_spec = importlib.util.spec_from_file_location(f"{package}.version", path)
    if file_spec is None or file_spec.loader is None or not os.path.exists(path):
        return None
    module = importlib.util.module_from_spec(file_spec)  # not in sys.modules
    file_spec.loader.exec_module(module)
    version = getattr(module, "__version__", None)
    return version if isinstance(version, str) else None

_window = threading.Lock()  # held while stand-ins are in sys.modules
WINDOW_WAIT_S = 10.0
_importing_thread: int | None = None  # the thread whose imports get stand-ins, during the import
_given: dict[str, dict[str, Any]] = {}  # the stand-ins of that import


class StandIn(types.ModuleType):
    """A module's stand-in: the names given, the rest from the real module,
    imported at the first use once the stand-ins are gone."""

    def __getattr__(self, attr: str) -> Any:
        importing = _importing_thread
        if importing is not None and (threading.get_ident() == importing or attr.startswith("__")):
            # The import machinery asks for __path__ (absent: not a package,
            # so `from m import n` takes n as given), in any thread; anything
            # else, in the importing thread, is a name this module does not give.
            raise AttributeError(f"{self.__name__}.{attr}: not given during the import "
                                 "(node.api.lean_imports)")
        # Another thread during that import: wait for its end (bounded: were
        # that import to wait for this thread, this fails instead of hanging).
        if not _window.acquire(timeout=WINDOW_WAIT_S):
            raise AttributeError(f"{self.__name__}.{attr}: still importing with stand-ins (node.api.lean_imports)")
        _window.release()
        real = importlib.import_module(self.__name__)
        try:
            return getattr(real, attr)
        except AttributeError:
            if not hasattr(real, "__path__"):
                raise
            # a submodule the importer reached through the package (hypercorn's `h2.settings`)
            return importlib.import_module(f"{self.__name__}.{attr}")


# The loader and the finder are duck-typed (importlib.abc would bring importlib.resources).
class _StandInLoader:
    def create_module(self, spec: ModuleSpec) -> types.ModuleType:
        module = StandIn(spec.name)
        module.__dict__.update(_given[spec.name])
        if any(other.startswith(spec.name + ".") for other in _given):
            module.__path__ = []  # its stand-in submodules are found by the finder below
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass  # nothing runs: that is the point


class _Finder:
    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: types.ModuleType | None = None) -> ModuleSpec | None:
        if fullname in _given and threading.get_ident() == _importing_thread:
            if _given[fullname] is ABSENT:
                raise ModuleNotFoundError(f"No module named {fullname!r} (node.api.lean_imports)", name=fullname)
            return importlib.util.spec_from_loader(fullname, _StandInLoader())
        return None


def import_module(name: str, stand_ins: dict[str, dict[str, Any]]) -> types.ModuleType:
    """Import `name` with `stand_ins` (HTTP_STACK, HTTPX, docker_sdk()) for
    those of their modules that are not loaded yet (see the module docstring)."""
    global _importing_thread
    if name in sys.modules:
        return sys.modules[name]
    finder = _Finder()
    defers = any(isinstance(v, Deferred) for given in stand_ins.values() for v in given.values())
    with _window:
        before = set(sys.modules) if defers else set()
        _importing_thread = threading.get_ident()
        _given.update(stand_ins)
        sys.meta_path.insert(0, finder)
        try:
            return importlib.import_module(name)
        finally:
            sys.meta_path.remove(finder)
            if defers:
                for loaded in [m for n, m in sys.modules.items() if n not in before]:
                    _undefer(loaded)
            _importing_thread = None
            for stand_in in _given:
                if isinstance(sys.modules.get(stand_in), StandIn):
                    del sys.modules[stand_in]
            _given.clear()


def _undefer(module: types.ModuleType) -> None:
    """Take the Deferred names out of a module the import loaded: a stand-in
    then answers them from the real module, any other module from its
    `__getattr__` (PEP 562), which imports it at the first access."""
    deferred = {attr: v for attr, v in vars(module).items() if isinstance(v, Deferred)}
    if not deferred:
        return
    for attr in deferred:
        delattr(module, attr)
    if isinstance(module, StandIn):
        return
    previous = vars(module).get("__getattr__")

    def __getattr__(attr: str) -> Any:
        if attr not in deferred:
            if previous is not None:
                return previous(attr)
            raise AttributeError(f"module {module.__name__!r} has no attribute {attr!r}")
        d = deferred[attr]
        value = getattr(importlib.import_module(d.module), d.name)
        if d.fixup is not None:
            d.fixup(module.__name__, attr, value)
        setattr(module, attr, value)  # a plain attribute from now on
        return value

    vars(module)["__getattr__"] = __getattr__
