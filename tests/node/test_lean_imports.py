"""The HTTP stack imported without asyncio, http.client, logging.config,
multiprocessing, html and tomllib (node.api.lean_imports), and still working.

What a user would notice if it broke: an idle agent about 4 MiB larger
(docs/benchmarks.md, "Idle memory"), or, worse, an API that fails where the
deferred modules are needed after all (a 404's phrase, another thread's
asyncio).  Checked in fresh interpreters, since this test process has
loaded them all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFERRED = ("asyncio", "http.client", "email.parser", "logging.config", "multiprocessing", "html", "tomllib",
            "mimetypes", "ssl", "wsproto")


def run_probe(code: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def test_the_api_serves_without_the_deferred_modules_and_loads_them_when_used() -> None:
    out = run_probe("""
import json, sys, tempfile
from node.api import lean_imports
trio = lean_imports.import_module("trio", lean_imports.trio_parts())  # as `shoal agent` imports it
from node.agent.agent import Agent
from node.agent.config import load_config

DEFERRED = %r

async def get(url, path):
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    await stream.send_all(f"GET {path} HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nConnection: close\\r\\n\\r\\n".encode())
    data = b""
    while chunk := await stream.receive_some():
        data += chunk
    return data.split(b" ", 2)[1].decode()

async def main():
    cfg = load_config(None, {"bind": "127.0.0.1:0", "api": "127.0.0.1:0", "profile": "local",
                             "dns_bind": "127.0.0.1:0", "state_dir": tempfile.mkdtemp()})
    async with trio.open_nursery() as nursery:
        agent = await nursery.start(Agent(cfg).run)
        with trio.fail_after(30):
            statuses = [await get(agent.api_url, "/v1/members")]
            served = [m for m in DEFERRED if m in sys.modules]
            # starlette's 404 (an HTTPException without a detail) asks http.client for its phrase
            statuses.append(await get(agent.api_url, "/v1/no-such-thing"))
        from starlette.exceptions import HTTPException
        phrase = HTTPException(status_code=418).detail
        ssl_after_404 = "ssl" in sys.modules
        # logging.config's function as hypercorn holds it: the real one, once called
        import hypercorn.logging
        hypercorn.logging.dictConfig({"version": 1, "incremental": True})
        import asyncio  # the real asyncio, for anyone who imports it afterwards
        ran = asyncio.run(asyncio.sleep(0, result="ran"))
        after = [m for m in DEFERRED if m in sys.modules]
        # a file's type, as starlette's FileResponse asks it
        import starlette.responses
        file_type = starlette.responses.guess_type("page.html")[0]
        print(json.dumps({"statuses": statuses, "served": served, "phrase": phrase, "asyncio": ran,
                          "ssl_after_404": ssl_after_404,
                          "after": after, "file_type": file_type}))
        nursery.cancel_scope.cancel()

trio.run(main)
""" % (DEFERRED,))
    assert out["statuses"] == ["200", "404"]
    assert out["served"] == []  # the API served without them
    assert out["phrase"] == "I'm a Teapot"
    assert out["asyncio"] == "ran"
    # the 404's phrase came without http.client, which would have loaded ssl (some 5 MiB) with it
    assert out["ssl_after_404"] is False
    # each loaded where it was used (multiprocessing, html, tomllib, mimetypes: never here;
    # ssl: by asyncio, which this test imports)
    assert out["after"] == ["asyncio", "logging.config", "ssl"]
    assert out["file_type"] == "text/html"


def test_a_name_not_given_fails_the_import_and_leaves_no_stand_in(tmp_path: Path) -> None:
    # a newer starlette or hypercorn that takes another name at import: the
    # import fails at once (not a half-made module later)
    (tmp_path / "takes_a_name.py").write_text("from tomllib import loads\n")
    out = run_probe(f"""
import json, sys
sys.path.insert(0, {str(tmp_path)!r})
from node.api import lean_imports
try:
    lean_imports.import_module("takes_a_name", lean_imports.HTTP_STACK)
    result = "imported"
except ImportError as e:
    result = str(e)
print(json.dumps({{"result": result, "tomllib": "tomllib" in sys.modules, "meta_path": len(sys.meta_path),
                  "stand_ins": [m for m, v in sys.modules.items() if isinstance(v, lean_imports.StandIn)]}}))
""")
    assert "cannot import name 'loads' from 'tomllib'" in out["result"]  # type: ignore[operator]
    assert out["tomllib"] is False and out["stand_ins"] == []


def test_another_thread_importing_a_deferred_module_meanwhile_gets_the_real_one(tmp_path: Path) -> None:
    # the HTTP stack's import holds stand-ins in sys.modules for a moment;
    # a thread that imports asyncio then waits for it and runs real asyncio
    (tmp_path / "slow_stack.py").write_text(
        "import builtins\nfrom asyncio import iscoroutinefunction\n"
        "inside, go_on = builtins.slow_stack_events\ninside.set()\nassert go_on.wait(30)\n")
    out = run_probe(f"""
import builtins, json, sys, threading
sys.path.insert(0, {str(tmp_path)!r})
from node.api import lean_imports
done = {{}}
def stack():
    done["stack"] = lean_imports.import_module("slow_stack", lean_imports.HTTP_STACK)
inside, go_on = builtins.slow_stack_events = threading.Event(), threading.Event()
t = threading.Thread(target=stack)
t.start()
assert inside.wait(30)
import asyncio  # the stand-in: the import above is not done
stand_in = type(asyncio).__name__
def other():
    done["ran"] = asyncio.run(asyncio.sleep(0, result="ran"))
u = threading.Thread(target=other)
u.start()
go_on.set()
t.join(30); u.join(30)
print(json.dumps({{"stand_in": stand_in, "ran": done.get("ran"), "real": type(sys.modules["asyncio"]).__name__}}))
""")
    assert out == {"stand_in": "StandIn", "ran": "ran", "real": "module"}


def test_httpx_without_its_command_line() -> None:
    # an agent that forwards (or shares images) loads httpx, not click and pygments with it
    out = run_probe("""
import json, sys
from node.api import lean_imports
httpx = lean_imports.import_module("httpx", lean_imports.HTTPX)
client = httpx.Client()
client.close()
loaded = [m for m in ("click", "pygments", "httpx._main") if m in sys.modules]
print(json.dumps({"loaded": loaded, "main": httpx.main.__name__}))
""")
    assert out == {"loaded": [], "main": "main"}


def test_the_image_share_loads_neither_the_command_line_nor_the_http_stack() -> None:
    # docker agents import it before they gossip (node.agent.runtime_link):
    # hypercorn's config comes later, with the HTTP stack and its stand-ins
    out = run_probe("""
import json, sys
from node.api import lean_imports
lean_imports.import_module("httpx", lean_imports.HTTPX)
import node.agent.image_share
print(json.dumps({"loaded": [m for m in ("click", "pygments", "hypercorn", "logging.config", "tomllib")
                             if m in sys.modules]}))
""")
    assert out == {"loaded": []}


def test_an_http2_client_is_served_once_h2_is_loaded_at_its_first_connection() -> None:
    out = run_probe("""
import json, subprocess, sys, tempfile
import trio
from node.agent.agent import Agent
from node.agent.config import load_config

CLIENT = '''
import httpx, sys
with httpx.Client(http1=False, http2=True, timeout=20) as c:  # h2c, prior knowledge
    r = c.get(sys.argv[1] + "/v1/members")
print(r.http_version, r.status_code)
'''

async def main():
    cfg = load_config(None, {"bind": "127.0.0.1:0", "api": "127.0.0.1:0", "profile": "local",
                             "dns_bind": "127.0.0.1:0", "state_dir": tempfile.mkdtemp()})
    async with trio.open_nursery() as nursery:
        agent = await nursery.start(Agent(cfg).run)
        before = [m for m in ("h2", "hpack", "priority") if m in sys.modules]
        with trio.fail_after(60):
            client = await trio.to_thread.run_sync(lambda: subprocess.run(
                [sys.executable, "-c", CLIENT, agent.api_url], capture_output=True, text=True, timeout=50))
        print(json.dumps({"before": before, "client": client.stdout.strip() or client.stderr[-2000:],
                          "after": [m for m in ("h2", "hpack", "priority") if m in sys.modules]}))
        nursery.cancel_scope.cancel()

trio.run(main)
""")
    assert out == {"before": [], "client": "HTTP/2 200", "after": ["h2", "hpack", "priority"]}


def test_a_websocket_upgrade_is_answered_once_wsproto_is_loaded_at_the_first_one() -> None:
    # /v1/members is no WebSocket route: hypercorn runs the handshake with
    # the app, which refuses it (403).  Without the real WSStream behind the
    # stand-in the connection would fail instead.
    out = run_probe("""
import json, sys, tempfile
import trio
from node.agent.agent import Agent
from node.agent.config import load_config

UPGRADE = (b"GET /v1/members HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\nSec-WebSocket-Version: 13\\r\\n\\r\\n")

async def main():
    cfg = load_config(None, {"bind": "127.0.0.1:0", "api": "127.0.0.1:0", "profile": "local",
                             "dns_bind": "127.0.0.1:0", "state_dir": tempfile.mkdtemp()})
    async with trio.open_nursery() as nursery:
        agent = await nursery.start(Agent(cfg).run)
        before = "wsproto" in sys.modules
        host, port = agent.api_url.split("://", 1)[1].rsplit(":", 1)
        with trio.fail_after(30):
            stream = await trio.open_tcp_stream(host, int(port))
            await stream.send_all(UPGRADE)
            data = b""
            while b"\\r\\n" not in data and (chunk := await stream.receive_some()):
                data += chunk
        print(json.dumps({"before": before, "status": data.split(b" ", 2)[1].decode(),
                          "after": "wsproto" in sys.modules}))
        nursery.cancel_scope.cancel()

trio.run(main)
""")
    assert out == {"before": False, "status": "403", "after": True}


def test_a_thread_the_import_waits_for_fails_instead_of_hanging(tmp_path: Path) -> None:
    # the import waits for a thread that meanwhile asks the stand-in for a
    # real name: that thread's wait ends (here after 0.2 s) with AttributeError
    (tmp_path / "waits_for_other.py").write_text(
        "import builtins\nfrom asyncio import iscoroutinefunction\n"
        "inside, other_done = builtins.waits_events\ninside.set()\nassert other_done.wait(30)\n")
    out = run_probe(f"""
import builtins, json, sys, threading
sys.path.insert(0, {str(tmp_path)!r})
from node.api import lean_imports
lean_imports.WINDOW_WAIT_S = 0.2
inside, other_done = builtins.waits_events = threading.Event(), threading.Event()
t = threading.Thread(target=lambda: lean_imports.import_module("waits_for_other", lean_imports.HTTP_STACK))
t.start()
assert inside.wait(30)
import asyncio
try:
    asyncio.run
    result = "no error"
except AttributeError as e:
    result = str(e)
other_done.set()
t.join(30)
print(json.dumps({{"result": result, "joined": not t.is_alive()}}))
""")
    assert out == {"result": "asyncio.run: still importing with stand-ins (node.api.lean_imports)", "joined": True}


TRIO_DEFERRED = ("trio._dtls", "trio._subprocess", "trio._file_io", "trio._path", "trio._ssl",
                 "trio._highlevel_ssl_helpers", "ssl", "bz2", "lzma", "locale")


def test_trio_as_the_agent_imports_it_loads_its_unused_parts_where_used(tmp_path: Path) -> None:
    # `shoal agent` (node.cli.agent_run) imports trio without DTLS, child
    # processes, async files and TLS streams, and shutil's bz2 and lzma check
    # and subprocess's locale without the modules themselves (about 1 MiB of
    # an idle agent): each still works, and is the object a plain
    # `import trio` gives, once used.
    out = run_probe("""
import json, sys
from node.api import lean_imports
trio = lean_imports.import_module("trio", lean_imports.trio_parts())
DEFERRED = %r
at_import = [m for m in DEFERRED if m in sys.modules]
import shutil, subprocess

async def main(tmp):
    path = trio.Path(tmp) / "f.txt"
    await path.write_text("written by trio.Path")
    async with await trio.open_file(str(path)) as f:
        text = await f.read()
    done = await trio.run_process([sys.executable, "-c", "print('child')"], capture_stdout=True)
    return text, done.stdout.decode().strip()

text, child = trio.run(main, %r)
names = {o.__name__: o.__module__ for o in (trio.Process, trio.run_process, trio.Path, trio.open_file,
                                             trio.SSLStream, trio.NeedHandshakeError, trio.DTLSEndpoint,
                                             trio.serve_ssl_over_tcp, trio.lowlevel.open_process)}
archive = shutil.make_archive(%r, "xztar", %r)  # lzma, loaded here
print(json.dumps({"at_import": at_import, "text": text, "child": child, "names": names,
                  "formats": sorted(f for f, _ in shutil.get_archive_formats()), "archive": archive[-7:],
                  "text_mode": subprocess.run([sys.executable, "-c", "print('é')"], capture_output=True,
                                              text=True).stdout.strip(),
                  "ssl_stream": issubclass(trio.SSLStream, trio.abc.Stream),
                  "dtls": trio.DTLSEndpoint is sys.modules["trio._dtls"].DTLSEndpoint}))
""" % (TRIO_DEFERRED, str(tmp_path), str(tmp_path / "a"), str(tmp_path)))
    assert out["at_import"] == []
    assert out["text"] == "written by trio.Path" and out["child"] == "child" and out["text_mode"] == "é"
    # as trio's own import names them
    assert out["names"] == {"Process": "trio", "run_process": "trio", "Path": "trio", "open_file": "trio",
                            "SSLStream": "trio", "NeedHandshakeError": "trio", "DTLSEndpoint": "trio",
                            "serve_ssl_over_tcp": "trio", "open_process": "trio.lowlevel"}
    assert out["formats"] == ["bztar", "gztar", "tar", "xztar", "zip"] and out["archive"] == ".tar.xz"
    assert out["ssl_stream"] is True and out["dtls"] is True
