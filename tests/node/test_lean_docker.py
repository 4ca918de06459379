"""The docker SDK imported without its high-level client, requests'
character detection and the other modules the runtime never runs
(node.api.lean_imports.docker_sdk, imported by node.runtime.engine), and
still working.

What a user would notice if it broke: a Docker agent about 4 MiB larger
(docs/benchmarks.md, "Idle memory"), or, worse, an engine call that fails
where a deferred module is needed after all (an error the engine sends as
untyped text, an ssh:// or https:// docker host), or, for an engine
reached without TLS, where the SDK is imported without ssl (some 5 MiB
with OpenSSL), a call that needed it.  Checked in fresh
interpreters against tests/node/stub_engine.py (no dockerd needed; the
runtime's tests run the same calls against a real one).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from node.cli.certs import make_ca, make_cert

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DEFERRED = ("charset_normalizer", "chardet", "importlib.metadata", "zipfile", "tarfile", "docker.client",
            "docker.models", "docker.context", "paramiko")


def run_probe(code: str, **env: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join((str(REPO), str(HERE))), **env}
    proc = subprocess.run([sys.executable, "-W", "error::Warning", "-c", code], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


CALLS = """
import json, sys
from pathlib import Path
import stub_engine
url = stub_engine.serve(%(kind)r, Path(%(sock)r), %(tls)r)
import node.runtime.engine as engine  # the SDK, lean
import docker.errors
DEFERRED = %(deferred)r
out = {"at_import": [m for m in DEFERRED if m in sys.modules], **globals().get("WITHOUT_TLS", {})}
api = engine.docker.APIClient(base_url=url, version="1.41", timeout=20)
out["ps"] = api.containers(all=True)
out["images"] = [i["RepoTags"] for i in api.images()]
out["inspect_image"] = api.inspect_image("busybox")["Id"][:9]
try:
    api.inspect_container("nope")
except docker.errors.NotFound as e:
    out["not_found"] = [e.explanation, engine.is_not_found(e)]
out["events"] = [e["Action"] for e in api.events(decode=True)]
out["pull"] = [m["status"] for m in api.pull("busybox", tag="latest", stream=True, decode=True,
                                              auth_config={"username": "u", "password": "p"})]
out["save"] = b"".join(api.get_image("busybox:latest", chunk_size=4)).decode()
out["load"] = [m["stream"] for m in api.load_image(b"a tar archive")]
out["logs"] = b"".join(api.logs("c1", stream=True, follow=False, stdout=True, stderr=True, tail=10)).decode()
out["before_untyped_error"] = [m for m in DEFERRED if m in sys.modules]
try:
    api.start("c1")  # answered with a body of no content type: requests guesses its charset
except docker.errors.APIError as e:
    out["untyped_error"] = [e.explanation, engine.answered(e)]
out["after"] = [m for m in DEFERRED if m in sys.modules]
out["auth_sent"] = [p for m, p, auth in stub_engine.seen if auth]
api.close()
print(json.dumps(out))
"""


# As an agent whose engine is reached without TLS imports the SDK (node.agent.runtime_link): with
# ssl absent, so requests, urllib3 and http.client take their branches for a Python without ssl.
WITHOUT_TLS = """
import sys
from node.api import lean_imports
lean_imports.import_module("docker", lean_imports.docker_sdk(tls=False))
import http.client, urllib3.util.ssl_, urllib3.connection
WITHOUT_TLS = {"ssl_loaded": "ssl" in sys.modules, "urllib3_tls": urllib3.util.ssl_.SSLContext is not None,
               "http_client_tls": hasattr(http.client, "HTTPSConnection"),
               "pyopenssl_tried": "urllib3.contrib.pyopenssl" in sys.modules}
"""


@pytest.mark.parametrize(("kind", "sdk_tls"), [("unix", True), ("tcp", True), ("https", True),
                                               ("unix", False), ("tcp", False)])
def test_the_runtimes_calls_work_and_load_only_what_they_need(kind: str, sdk_tls: bool, tmp_path: Path) -> None:
    env = {}
    tls = None
    if kind == "https":
        ca, _ = make_ca(tmp_path / "ca")
        tls = make_cert("engine", tmp_path / "ca", tmp_path / "certs", ips=["127.0.0.1"])
        env["REQUESTS_CA_BUNDLE"] = str(ca)  # requests verifies the engine against our CA
        tls = (str(tls[0]), str(tls[1]))
    out = run_probe(("" if sdk_tls else WITHOUT_TLS)
                    + CALLS % {"kind": kind, "sock": str(tmp_path / "engine.sock"), "tls": tls, "deferred": DEFERRED},
                    **env)
    if not sdk_tls:
        # no ssl, hence no OpenSSL, until the stub engine's own import; nothing tried in its place
        assert (out["ssl_loaded"], out["urllib3_tls"], out["http_client_tls"], out["pyopenssl_tried"]) == \
            (False, False, False, False)
    assert out["at_import"] == []
    assert out["ps"] == [] and out["images"] == [["busybox:latest"]] and out["inspect_image"] == "sha256:ab"
    assert out["not_found"] == ["No such container: nope", True]
    assert out["events"] == ["start"]
    assert out["pull"] == ["Pulling from library/busybox", "Download complete"]
    assert out["auth_sent"] == ["/images/create"]
    assert out["save"] == "a tar archive"
    assert out["load"] == ["Loaded image: busybox:latest\n"]
    assert out["logs"] == "out\nerr\n"
    assert out["before_untyped_error"] == []  # none of the above needed a deferred module
    # the engine's text, decoded as it was sent: the character detection was loaded for it
    assert out["untyped_error"] == ["engine says no: café", True]
    assert out["after"] == ["charset_normalizer"]


def test_an_agent_without_tls_still_renders_its_metrics() -> None:
    """/v1/metrics answered 500 on every agent with the docker runtime on its
    default socket: prometheus_client names urllib.request's HTTPSHandler,
    which urllib.request imported without ssl does not have."""
    out = run_probe("""
import json, sys
from node.api import lean_imports
lean_imports.import_docker_sdk_without_tls()
from node.telemetry.metrics import AgentMetrics
m = AgentMetrics()
m.health.set(2)
text = m.render().decode()
import urllib.request
try:
    urllib.request.HTTPSHandler()
    refused = None
except RuntimeError as e:
    refused = str(e)
print(json.dumps({"rendered": "shoal_health_score 2.0" in text, "ssl_loaded": "ssl" in sys.modules,
                  "refused": refused}))
""")
    assert out["rendered"] is True
    assert "imported without ssl" in str(out["refused"])


def test_the_deferred_modules_load_where_used() -> None:
    out = run_probe("""
import io, json, sys, tempfile
import node.runtime.engine as engine
docker = engine.docker
DEFERRED = %r
at_import = [m for m in DEFERRED if m in sys.modules]
# the package's re-exports are the real ones at first use
import docker.client, docker.context
client_class = docker.DockerClient is docker.client.DockerClient and isinstance(docker.DockerClient, type)
from docker import from_env, ContextAPI
context = ContextAPI.get_current_context().name
# build contexts (docker.utils.build's tarfile)
import tarfile
context_tar = tarfile.open(fileobj=docker.utils.build.mkbuildcontext(io.BytesIO(b"FROM scratch\\n"))).getnames()
# a CA bundle inside a zip archive (requests.utils' zipfile)
import requests.utils
d = tempfile.mkdtemp()
import zipfile
with zipfile.ZipFile(d + "/certs.zip", "w") as z:
    z.writestr("ca.pem", "a bundle")
with open(requests.utils.extract_zipped_paths(d + "/certs.zip/ca.pem")) as f:
    bundle = f.read()
# urllib3.http2's version(): importlib.metadata's
import urllib3.http2
version = urllib3.http2.version("docker")
import importlib.metadata
version = version == importlib.metadata.version("docker") == docker.__version__
# requests' character detection: the real module, with the version requests checked
import requests.compat, charset_normalizer
detector = [requests.compat.chardet.detect(b"hello")["encoding"], charset_normalizer.__version__,
            requests.compat.chardet.__version__]
print(json.dumps({"at_import": at_import, "client_class": client_class, "from_env": from_env.__name__,
                  "context": context, "context_tar": context_tar, "bundle": bundle, "version": version,
                  "detector": detector}))
""" % (DEFERRED,))
    assert out["at_import"] == []
    assert out["client_class"] is True and out["from_env"] == "from_env" and out["context"] == "default"
    assert out["context_tar"] == ["Dockerfile"]
    assert out["bundle"] == "a bundle"
    assert out["version"] is True
    detector = out["detector"]
    assert isinstance(detector, list) and detector[0] == "ascii" and detector[1] == detector[2]


def test_an_ssh_host_loads_paramiko_at_its_connection(tmp_path: Path) -> None:
    # paramiko is not a dependency: where it is installed (a fake one here),
    # the SDK imports it at once; it is loaded for an ssh:// host only
    (tmp_path / "paramiko").mkdir()
    (tmp_path / "paramiko" / "__init__.py").write_text(
        "import builtins\n"
        "builtins.paramiko_connects = []\n"
        "class SSHClient:\n"
        "    def load_system_host_keys(self): pass\n"
        "    def set_missing_host_key_policy(self, policy): pass\n"
        "    def connect(self, **params): builtins.paramiko_connects.append(params)\n"
        "    def close(self): pass\n"
        "class RejectPolicy: pass\n")
    code = """
import builtins, json, sys
import node.runtime.engine as engine
at_import = "paramiko" in sys.modules
try:
    api = engine.docker.APIClient(base_url="ssh://me@127.0.0.1:2222", version="1.41", timeout=5)
    result = getattr(builtins, "paramiko_connects", None)
except engine.docker.errors.DockerException as e:
    result = str(e)
print(json.dumps({"at_import": at_import, "result": result}))
"""
    out = run_probe(f"import sys\nsys.path.insert(0, {str(tmp_path)!r})\n" + code, HOME=str(tmp_path))
    assert out == {"at_import": False, "result": [{"hostname": "127.0.0.1", "port": 2222, "username": "me"}]}
    # without paramiko: the SDK's own answer, as without the stand-ins
    assert run_probe(code, HOME=str(tmp_path)) == {
        "at_import": False, "result": "Install paramiko package to enable ssh:// support"}


def test_a_name_the_sdk_takes_that_is_not_given_fails_the_import(tmp_path: Path) -> None:
    # a newer docker SDK (or requests, urllib3) that takes another name of a
    # deferred module at import: the import fails at once, naming it
    (tmp_path / "newer_sdk.py").write_text("from importlib.metadata import PackageNotFoundError\n")
    out = run_probe(f"""
import json, sys
sys.path.insert(0, {str(tmp_path)!r})
from node.api import lean_imports
try:
    lean_imports.import_module("newer_sdk", lean_imports.docker_sdk())
    result = "imported"
except ImportError as e:
    result = str(e)
print(json.dumps({{"result": result, "stand_ins": [m for m, v in sys.modules.items()
                                                  if isinstance(v, lean_imports.StandIn)]}}))
""")
    assert "cannot import name 'PackageNotFoundError' from 'importlib.metadata'" in out["result"]  # type: ignore[operator]
    assert out["stand_ins"] == []


def test_a_docker_agents_image_share_loads_httpx_only_at_its_first_request_to_a_peer() -> None:
    # About 0.8 MiB of an idle Docker agent: httpx is for fetching images from
    # peers (and forwarding API calls), which an idle agent never does.
    out = run_probe("""
import json, sys
import node.agent.image_share
idle = "httpx" in sys.modules
from node.api.forward import httpx_module
httpx = httpx_module()
print(json.dumps({"idle": idle, "client": httpx.AsyncClient.__name__, "cli": "httpx._main" in sys.modules}))
""")
    assert out == {"idle": False, "client": "AsyncClient", "cli": False}


def test_dates_non_ascii_hosts_and_file_types_load_their_modules_where_used() -> None:
    # calendar (cookie expiry dates, dates in mail headers), stringprep (a
    # host name that is not ASCII) and mimetypes (a file in a multipart form)
    # are imported by requests, urllib3, http.cookiejar and email, never used
    # by the runtime's calls (the test above): loaded where used.
    out = run_probe("""
import json, sys
import node.runtime.engine as engine
at_import = [m for m in ("calendar", "stringprep", "mimetypes") if m in sys.modules]
import requests, requests.cookies, urllib3.fields, http.cookiejar, email.utils
cookie = requests.cookies.create_cookie("c", "v", expires=None)
morsel = __import__("http.cookies").cookies.Morsel()
morsel.set("m", "v", "v")
morsel["expires"] = "Wed, 01-Jan-2031 00:00:00 GMT"
expires = requests.cookies.morsel_to_cookie(morsel).expires
url = requests.Request("GET", "http://bücher.example/x").prepare().url
codec = "bücher.example".encode("idna").decode()  # as the socket module encodes a host name
print(json.dumps({"at_import": at_import, "expires": expires, "url": url, "codec": codec,
                  "http2time": http.cookiejar.http2time("Wed, 01 Jan 2031 00:00:00 GMT"),
                  "mail_date": email.utils.mktime_tz(email.utils.parsedate_tz("Mon, 20 Nov 1995 19:12:08 -0500")),
                  "type": urllib3.fields.guess_content_type("a.json"),
                  "loaded": [m for m in ("calendar", "stringprep", "mimetypes") if m in sys.modules]}))
""")
    assert out == {"at_import": [], "expires": 1924992000, "url": "http://xn--bcher-kva.example/x",
                   "codec": "xn--bcher-kva.example",
                   "http2time": 1924992000, "mail_date": 816912728, "type": "application/json",
                   "loaded": ["calendar", "stringprep", "mimetypes"]}
