"""An agent that serves no TLS, and reaches its engine without TLS, never maps OpenSSL.

What a user would notice if it broke: an idle agent some 5 MiB larger
(libcrypto and libssl with the ssl module, docs/benchmarks.md, "Idle
memory"), or, worse, an agent whose API or engine calls fail because ssl was
kept away from a library that needed it.  A real `shoal agent` process (the
fake runtime, and the docker runtime against tests/node/stub_engine.py on a
unix socket): its memory map is read while it serves requests, a 404 among
them (whose phrase starlette takes from http.client, which imports ssl).
And an agent that serves TLS, where ssl is now loaded as TLS is set up,
still serves HTTPS and takes a peer's client certificate as its proof.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from node.cli.certs import make_ca, make_cert
from tests.node import stub_engine
from tests.node.agentproc import running_agent

OPENSSL_FILES = ("libcrypto", "libssl", "/_ssl.", "/_hashlib.")


def get_status(url: str, context: ssl.SSLContext | None = None) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10, context=context) as r:
            json.load(r)
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def openssl_mapped(pid: int) -> list[str]:
    with open(f"/proc/{pid}/maps") as f:
        paths = {line.split()[-1] for line in f if "/" in line}
    return sorted(p for p in paths if any(name in p for name in OPENSSL_FILES))


@pytest.mark.parametrize("runtime", ["fake", "docker"])
def test_an_agent_without_tls_serves_without_loading_openssl(runtime: str, tmp_path: Path) -> None:
    config = 'dns_bind = "off"\n'
    if runtime == "docker":
        config += f'runtime = "docker"\ndocker_host = "{stub_engine.serve("unix", tmp_path / "engine.sock")}"\n'
    with running_agent(tmp_path, "lean", config) as info:
        statuses = [get_status(info["api"] + "/v1/members"), get_status(info["api"] + "/v1/no-such-thing")]
        mapped = openssl_mapped(info["pid"])
    assert statuses == [200, 404]
    assert mapped == []


def test_an_agent_serving_tls_still_proves_its_peers_by_certificate(tmp_path: Path) -> None:
    # ssl is loaded where TLS is set up now (node.api.listen, node.api.tls):
    # a real agent process with the API's TLS settings serves HTTPS and takes
    # a client certificate from the cluster CA as a peer's proof on a
    # forwarded route, and none as no proof.
    ca, _ = make_ca(tmp_path / "ca")
    cert, key = make_cert("lean", tmp_path / "ca", tmp_path / "certs", ips=["127.0.0.1"])
    peer = make_cert("peer", tmp_path / "ca", tmp_path / "certs", ips=["127.0.0.1"])
    config = (f'dns_bind = "off"\napi_tls_cert = "{cert}"\napi_tls_key = "{key}"\napi_tls_ca = "{ca}"\n'
              'api_token = "a-token-of-at-least-sixteen-characters"\n')
    anonymous = ssl.create_default_context(cafile=str(ca))
    with_cert = ssl.create_default_context(cafile=str(ca))
    with_cert.load_cert_chain(str(peer[0]), str(peer[1]))
    with running_agent(tmp_path, "lean", config) as info:
        assert info["api"].startswith("https://127.0.0.1:")
        statuses = [get_status(info["api"] + "/v1/containers", anonymous),
                    get_status(info["api"] + "/v1/containers", with_cert)]
        mapped = openssl_mapped(info["pid"])
    assert statuses == [401, 200]
    assert any("libssl" in path for path in mapped)  # it does serve TLS: OpenSSL is there
