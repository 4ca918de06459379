"""scripts/netns: namespaces on a private bridge, nftables loss, clean teardown.

Root only (skipped otherwise).  Uses its own namespace prefix so it never
touches a testbed someone else has up.  UDP between two namespaces: all
datagrams arrive without loss, none with `loss 100`, and `down` leaves no
namespace behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NETNS = ROOT / "scripts" / "netns"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="scripts/netns needs root")

RECEIVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 9999))
s.settimeout(1.5)
n = 0
print("ready", flush=True)
try:
    while True:
        s.recv(64); n += 1
except socket.timeout:
    pass
print(n, flush=True)
"""
SENDER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(int(sys.argv[2])):
    s.sendto(b"x", (sys.argv[1], 9999)); time.sleep(0.001)
"""


@pytest.fixture
def netns():
    env = dict(os.environ, SHOAL_NETNS_PREFIX=f"shoaltest{os.getpid()}")

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        out = subprocess.run([str(NETNS), *args], env=env, capture_output=True, text=True,
                             timeout=60, stdin=subprocess.DEVNULL)
        if check and out.returncode != 0:
            pytest.fail(f"scripts/netns {' '.join(args)} exited {out.returncode}:\n{out.stderr}")
        return out

    run.prefix = env["SHOAL_NETNS_PREFIX"]
    try:
        yield run
    finally:
        run("down", check=False)


def udp_delivered(run, count: int) -> int:
    dst = run("addr", "2").stdout.strip()
    recv = subprocess.Popen([str(NETNS), "exec", "2", sys.executable, "-c", RECEIVER, dst],
                            env={**os.environ, "SHOAL_NETNS_PREFIX": run.prefix},
                            stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        assert recv.stdout.readline().strip() == "ready"
        run("exec", "1", sys.executable, "-c", SENDER, dst, str(count))
        out, _ = recv.communicate(timeout=30)
        return int(out.strip())
    finally:
        if recv.poll() is None:
            recv.kill()
            recv.wait()


def namespaces(prefix: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]


def test_up_loss_down(netns):
    netns("up", "2")
    assert sorted(namespaces(netns.prefix)) == sorted(
        [f"{netns.prefix}-br", f"{netns.prefix}-ns-1", f"{netns.prefix}-ns-2"])
    assert netns("addr", "1").stdout.strip() == "10.77.0.2"

    assert udp_delivered(netns, 200) == 200

    netns("loss", "100")
    assert udp_delivered(netns, 50) == 0
    netns("loss", "30", "2")
    assert "numgen random mod 100 < 30 counter" in netns("status").stdout
    assert 10 <= udp_delivered(netns, 400) <= 390  # ~280 expected; only "some, not all"

    netns("loss", "0")
    assert udp_delivered(netns, 50) == 50

    netns("down")
    assert namespaces(netns.prefix) == []
