"""The image routes (node/api/routes_images.py) are agent-to-agent routes:
with an API token they take the token or another agent's credential for
exactly that request, and nothing else."""

from __future__ import annotations

import httpx
from test_api_security import KEY, TOKEN, authed, start_agent, wait_alive  # noqa: F401 -- fixture

from node.api.forward import forward_headers


async def test_image_routes_take_a_peers_credential_and_a_fake_runtime_has_no_image_store(start_agent):  # noqa: F811
    a = await start_agent("a", api_token=TOKEN, encrypt=KEY)
    b = await start_agent("b", api_token=TOKEN, encrypt=KEY, join=[str(a.advertise)])
    await wait_alive(a, {"a", "b"})
    async with httpx.AsyncClient(base_url=b.api_url, timeout=10.0) as c:
        for target in ("/v1/images", "/v1/images/archive?ref=app%3A1"):
            assert (await c.get(target)).status_code == 401                 # no credential
            r = await c.get(target, headers=forward_headers(a, "GET", target))
            assert r.status_code == 404 and "has no image store" in r.json()["error"], r.text
        replayed = forward_headers(a, "GET", "/v1/images")
        assert (await c.get("/v1/images?ref=x%3A1", headers=replayed)).status_code == 401
    async with authed(a) as c:
        nodes = (await c.get("/v1/images?cluster=1")).json()["nodes"]
    assert [(n["node"], "has no image store" in n["error"]) for n in nodes] == [("a", True), ("b", True)]
