"""Replicas that serve, on the testbed: ports, the catalog and DNS across 5 real nodes.

What issue 12 says must be shown on the testbed:
  * from node 1's namespace, an HTTP GET reaches every replica of a
    6-replica job through the addresses the catalog gives
    (`GET /v1/services/web`), and each page names the slot and node that
    serve it -- so the catalog's address and port are the replica's, through
    Docker's bridge and NAT inside each node's namespace;
  * a replica of job `client` reaches job `api` on another node by DNS
    name and SRV port, from inside its container (busybox nslookup and
    wget, the resolver the runtime gives the container); here both are a
    stack's services (jobs shop-client and shop-api), and the client
    reaches the api by its service name `api` too, as under Compose;
  * after a power cut, DNS on every surviving agent stops returning the
    dead node's instances within the heal time and returns the
    replacements.
Also: Docker's NAT rules are in the nodes' namespaces, none on the host.

Root only (skipped otherwise).  The 5-node testbed is the session's
(testbed_cluster.py), shared with test_e2e.py.  Requests "from node 1" are
made by this process from a thread that entered node 1's network namespace
(testbed_cluster.in_netns), so they leave from node 1's address as a
process on that node would; DNS is asked the same way, of each agent's
127.0.0.1:8600 inside its own namespace.
"""

from __future__ import annotations

import collections
import os
import re
import subprocess
import time
import urllib.request

import pytest

from testbed_cluster import in_netns, job    # same directory (pytest's default prepend import mode)

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="scripts/testbed needs root"),
              pytest.mark.slow]

DNS_PORT = 8600
ZONE = "shoal"
# A page naming its slot and node, from the environment the runtime gives
# the container, served by busybox httpd on the container's port 8080.
HTTPD = ('printf "slot=%s node=%s\\n" "$SHOAL_SLOT" "$SHOAL_NODE" >/www/index.html; '
         'exec httpd -f -p 8080 -h /www')
WEB_PORTS = {"http": {"to": 8080}}
HEAL_S = 30        # power cut -> every survivor's answers right, `local` preset (re-placement ~3 s)


def web_job(name: str, replicas: int, **kw) -> dict:
    return job(name, replicas, command=["sh", "-c", HTTPD], ports=WEB_PORTS, **kw)


def instances(cl, name: str, node: int | None = None) -> list[dict]:
    """The catalog's instances of service `name`, as node's agent answers."""
    body = cl.api("GET", f"/v1/services/{name}", node=node)
    return body["instances"] if isinstance(body, dict) else body


def slot_of(inst: dict) -> int:
    return int(inst["slot"])


def http_get(url: str, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def page_fields(page: str) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in page.split() if "=" in kv)


def ns_of(cl, i: int) -> str:
    return cl.nodes[i]["ns"]


# ---- scene 1: every replica answers at the catalog's address ------------------------------------------


def test_every_replica_answers_at_its_catalog_address_from_node_1(cluster):
    cl = cluster
    cl.ensure_all_up()
    cl.submit(web_job("web", 6))
    try:
        cl.wait(lambda: len(instances(cl, "web", node=1)) == 6, 60, "6 web instances in node 1's catalog")
        found = instances(cl, "web", node=1)
        addr_of = {n["name"]: n["addr"] for n in cl.nodes.values()}
        pages = {}
        for inst in found:
            url = f"http://{inst['address']}:{inst['ports']['http']}/"
            # httpd may still be starting when the catalog lists the replica
            # (it has no health check): poll, from node 1's namespace
            pages[slot_of(inst)] = cl.wait(lambda u=url: in_netns(ns_of(cl, 1), http_get, u), 20,
                                           f"GET {url} from node 1")
        with cl.explained():
            assert sorted(pages) == list(range(6)), found
            for inst in found:
                assert inst["address"] == addr_of[inst["node"]], inst   # published on the node's address
                fields = page_fields(pages[slot_of(inst)])
                assert fields.get("slot") == str(slot_of(inst)), (inst, fields)      # SHOAL_SLOT
                assert fields.get("node") == inst["node"], (inst, fields)
            print("web served by", dict(collections.Counter(i["node"] for i in found)))

            # Docker's NAT lives in the nodes' namespaces: each node that runs a
            # replica DNATs its published port; the host has no rule for our subnet.
            for inst in found:
                i = cl.index_of(inst["node"])
                rules = subprocess.run(["nsenter", f"--net=/run/netns/{ns_of(cl, i)}", "iptables", "-t", "nat",
                                        "-S", "DOCKER"], capture_output=True, text=True, timeout=30).stdout
                assert re.search(rf"-d {re.escape(inst['address'])}/32 .*--dport {inst['ports']['http']} "
                                 r"-j DNAT", rules), rules
            host = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True, timeout=30).stdout
            assert cl.bed.subnet + "." not in host, "a rule for the testbed's subnet in the host's tables"
    finally:
        cl.stop_job("web")


# ---- scene 2: one job finds another by DNS, from inside its container ------------------------------


def docker_exec(cl, i: int, cid: str, cmd: list[str]) -> tuple[int, str]:
    api = cl.docker[i]
    ex = api.exec_create(cid, cmd)
    out = api.exec_start(ex["Id"]).decode(errors="replace")
    return api.exec_inspect(ex["Id"])["ExitCode"], out


def test_a_client_reaches_another_job_by_dns_name_and_srv_port(cluster):
    cl = cluster
    cl.ensure_all_up()
    server, client = cl.name(2), cl.name(3)
    # Services api and client of stack shop (what `shoal stack deploy` submits).
    cl.submit(web_job("shop-api", 1, constraints=[f"host == {server}"]))
    cl.submit(job("shop-client", 1, constraints=[f"host == {client}"]))
    try:
        (api,) = cl.wait(lambda: instances(cl, "shop-api", node=3), 60, "shop-api in node 3's catalog")
        (c,) = cl.wait(lambda: [x for x in cl.containers("shop-client", [3]) if x["State"] == "running"], 60,
                       "shop-client running on node 3")
        assert api["node"] == server
        # SRV: the api's host port, and a target that resolves to its node
        code, out = cl.wait(lambda: (r := docker_exec(cl, 3, c["Id"], ["busybox", "nslookup", "-type=SRV",
                                                                        f"_http._tcp.shop-api.service.{ZONE}"]))[0]
                            == 0 and r, 20, "the SRV lookup inside the client")
        srv = re.findall(r"service = (\d+) (\d+) (\d+) (\S+)", out)
        with cl.explained():
            assert [int(s[2]) for s in srv] == [api["ports"]["http"]], out
        port = int(srv[0][2])
        # the name, through the container's resolver (search domain and all), to a page from another node
        url = f"http://shop-api.service.{ZONE}:{port}/"
        code, page = cl.wait(lambda: (r := docker_exec(cl, 3, c["Id"], ["wget", "-qO-", url]))[0] == 0 and r, 20,
                             f"wget {url} inside the client")
        with cl.explained():
            fields = page_fields(page)
            assert fields.get("node") == server and fields.get("slot") == "0", page
        # the short names work too: the job's name (service.shoal is a search
        # domain) and, within the stack, the service's (shop.stack.shoal, first)
        for short in ("shop-api", "api"):
            code, page = docker_exec(cl, 3, c["Id"], ["wget", "-qO-", f"http://{short}:{port}/"])
            with cl.explained():
                assert code == 0 and page_fields(page).get("node") == server, (short, page)
    finally:
        cl.stop_job("shop-client")
        cl.stop_job("shop-api")


# ---- scene 3: after a power cut, every surviving agent's DNS drops the dead node --------------------------


def dns_answers(ns: str, qname: str, rdtype: str) -> list[str]:
    """The answer's records as text, from the agent's DNS on 127.0.0.1:8600 inside ns."""
    import dns.message
    import dns.query
    import dns.rcode

    q = dns.message.make_query(qname, rdtype)
    r = in_netns(ns, dns.query.udp, q, "127.0.0.1", 2.0, DNS_PORT)
    if r.rcode() == dns.rcode.NXDOMAIN:
        return []
    return [rd.to_text() for rrset in r.answer for rd in rrset]


def srv_ports(ns: str, name: str) -> list[int]:
    return sorted(int(rec.split()[2]) for rec in dns_answers(ns, f"_http._tcp.{name}.service.{ZONE}", "SRV"))


def test_after_a_power_cut_every_surviving_agents_dns_drops_the_dead_node(cluster):
    cl = cluster
    cl.ensure_all_up()
    cl.submit(web_job("cut", 6, strategy="spread"))
    victim = None
    try:
        everyone = list(cl.nodes)
        cl.wait(lambda: all(len(srv_ports(ns_of(cl, i), "cut")) == 6 for i in everyone), 60,
                "6 SRV records for cut on every agent")
        placed = instances(cl, "cut", node=1)
        per_node = collections.Counter(i["node"] for i in placed if i["node"] != cl.name(1))
        victim = cl.index_of(per_node.most_common(1)[0][0])
        dead_addr = cl.nodes[victim]["addr"]
        dead_ports = {(i["address"], i["ports"]["http"]) for i in placed if i["node"] == cl.name(victim)}
        survivors = [i for i in everyone if i != victim]

        t0 = time.monotonic()
        cl.bed.run("kill", str(victim))
        stale_gone: dict[int, float] = {}
        healed: dict[int, float] = {}

        def every_survivor_right() -> bool:
            for i in survivors:
                ns = ns_of(cl, i)
                addrs = set(dns_answers(ns, f"cut.service.{ZONE}", "A"))
                if i not in stale_gone and dead_addr not in addrs:
                    stale_gone[i] = time.monotonic() - t0
                if i not in healed and dead_addr not in addrs and len(srv_ports(ns, "cut")) == 6:
                    healed[i] = time.monotonic() - t0
            return len(healed) == len(survivors)

        cl.wait(every_survivor_right, HEAL_S, f"every surviving agent's DNS without {cl.name(victim)} "
                                              "and with 6 instances of cut")
        print(f"power cut on {cl.name(victim)} ({len(dead_ports)} instances of cut): the dead node left the "
              f"answers after {max(stale_gone.values()):.1f} s on the last survivor, "
              f"all 6 answered again after {max(healed.values()):.1f} s")
        with cl.explained():
            # what each survivor's DNS answers is its catalog: the replacements, where they run
            for i in survivors:
                listed = {(x["ports"]["http"], x["node"]) for x in instances(cl, "cut", node=i)}
                srv = {(int(port), target.split(".")[0]) for _prio, _weight, port, target in
                       (rec.split() for rec in dns_answers(ns_of(cl, i), f"_http._tcp.cut.service.{ZONE}", "SRV"))}
                assert srv == listed and len(srv) == 6, (cl.name(i), srv, listed)
                assert cl.name(victim) not in {node for _port, node in srv}
                assert dead_addr not in dns_answers(ns_of(cl, i), f"cut.service.{ZONE}", "A")
    finally:
        if victim is not None:
            cl.bed.run("start", str(victim), check=False)
        cl.stop_job("cut")
