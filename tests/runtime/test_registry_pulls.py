"""Pulls from a real registry into a real dockerd (root only).

Each module starts two of Debian's docker-registry on 127.0.0.1
(scripts/registry: one open, one with htpasswd auth; dockerd treats
127.0.0.0/8 registries as insecure, i.e. plain HTTP, by default), pushes
test images built from shoal-demo:latest with the Docker API, and removes
their tags locally, so the only way for a node to get them is a pull.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
import subprocess
from pathlib import Path

import pytest
import trio

from auction.spec import validate
from node.agent.registries import images_config
from node.runtime.docker import DockerRuntime

from test_docker_runtime import claim, fast, running, until  # same directory

ROOT = Path(__file__).resolve().parents[2]
BASE = "shoal-demo:latest"
USER, PASSWORD = "shoal-test", "pw-Zq8xV2-registry"
BUILT: list[str] = []

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="starts dockerd and a registry: needs root")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    def __init__(self, base: Path, name: str, auth: bool) -> None:
        self.dir = base / name
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.auth = auth
        self.password_file = base / f"{name}.pass"
        self.password_file.write_text(PASSWORD + "\n")
        self.password_file.chmod(0o600)

    def script(self, *args: str) -> None:
        out = subprocess.run([str(ROOT / "scripts" / "registry"), *args], capture_output=True, text=True,
                             timeout=600, stdin=subprocess.DEVNULL, check=False)
        assert out.returncode == 0, out.stderr

    def up(self) -> None:
        extra = (USER, str(self.password_file)) if self.auth else ()
        self.script("up", str(self.dir), str(self.port), *extra)

    def down(self) -> None:
        self.script("down", str(self.dir))


@pytest.fixture(scope="module")
def registries(engine, tmp_path_factory):
    base = tmp_path_factory.mktemp("registries")
    regs = Registry(base, "open", False), Registry(base, "locked", True)
    for r in regs:
        r.up()
    yield regs
    for r in regs:
        r.down()
    for image_id in BUILT:      # the test images, once no test container uses them
        with contextlib.suppress(Exception):
            engine.images.remove(image_id, force=True)


def build_variant(engine, version: str) -> str:
    """An image that differs from BASE by a label only; returns its id."""
    dockerfile = f"FROM {BASE}\nLABEL shoal.test.version={version}\n".encode()
    image, _ = engine.images.build(fileobj=io.BytesIO(dockerfile), rm=True, pull=False)
    BUILT.append(image.id)
    return image.id


def publish(engine, reg: Registry, image_id: str, repo: str, tag: str) -> str:
    """Push image_id as reg/repo:tag, then drop the tag here: only the registry has it."""
    ref = f"{reg.host}/{repo}"
    engine.images.get(image_id).tag(ref, tag)
    auth = {"username": USER, "password": PASSWORD} if reg.auth else None
    out = engine.images.push(ref, tag=tag, auth_config=auth, stream=True, decode=True)
    errors = [m for m in out if "error" in m]
    assert not errors, errors
    engine.images.remove(f"{ref}:{tag}")
    return f"{ref}:{tag}"


def spec(image: str, **kw):
    return validate({"name": "web", "image": image, "command": ["sleep", "600"], "cpu": 0.1, "memory": "16MiB",
                     **kw})


class Recorder:
    def __init__(self) -> None:
        self.gave_up: dict[str, str] = {}
        self.pulls: list[dict] = []

    def give_up(self, slot: str, reason: str) -> None:
        self.gave_up[slot] = reason

    def pull(self, event: dict) -> None:
        self.pulls.append(event)


def runtime(node: str, rec: Recorder, auth_for=None) -> DockerRuntime:
    return DockerRuntime(node, fast(pull_images=True, pull_timeout_s=60.0), on_give_up=rec.give_up,
                         on_pull=rec.pull, auth_for=auth_for)


def container_image(engine, node: str, slot: str) -> str:
    [c] = engine.containers.list(all=True, filters={"label": [f"shoal.node={node}", f"shoal.slot={slot}"]})
    return c.attrs["Image"]


async def test_a_job_whose_image_is_only_in_the_registry_runs(engine, node, registries):
    reg = registries[0]
    ref = publish(engine, reg, build_variant(engine, f"only-{node}"), f"only-{node}", "1")
    rec = Recorder()
    rt = runtime(node, rec)
    sp = spec(ref)
    async with trio.open_nursery() as n:
        await n.start(rt.run)
        assert not rt.image_present(ref)
        rt.start(claim(node, sp), sp)
        await until(lambda: running(rt, "web/0"), timeout=60)
        assert rt.image_present(ref) and rec.gave_up == {}
        states = [e["state"] for e in rec.pulls if e["image"] == ref]
        assert states[0] == "started" and states[-1] == "done", rec.pulls
        assert rec.pulls[-1]["layers"] >= 1 and rec.pulls[-1]["layers_done"] == rec.pulls[-1]["layers"]
        n.cancel_scope.cancel()
    engine.images.remove(ref, force=True)


async def test_always_runs_the_image_a_moved_tag_names_and_missing_keeps_the_local_one(engine, node, registries):
    reg = registries[0]
    repo = f"moving-{node}"
    v1 = build_variant(engine, f"{node}-1")
    engine.images.get(v1).tag(f"keep-{repo}", "v1")     # kept here when its registry tag is dropped
    ref = publish(engine, reg, v1, repo, "stable")
    v2 = build_variant(engine, f"{node}-2")
    publish(engine, reg, v2, repo, "stable")             # the tag moved in the registry ...
    engine.images.get(v1).tag(f"{reg.host}/{repo}", "stable")   # ... while this node still has the old one
    rec = Recorder()
    rt = runtime(node, rec)
    missing, always = spec(ref), spec(ref, pull="always")
    async with trio.open_nursery() as n:
        await n.start(rt.run)
        rt.start(claim(node, missing, index=0), missing)
        await until(lambda: running(rt, "web/0"), timeout=60)
        assert container_image(engine, node, "web/0") == v1 and rec.pulls == []
        rt.start(claim(node, always, index=1), always)
        await until(lambda: running(rt, "web/1"), timeout=60)
        assert container_image(engine, node, "web/1") == v2
        assert [e["state"] for e in rec.pulls][-1] == "done"
        n.cancel_scope.cancel()
    engine.images.remove(ref, force=True)
    engine.images.remove(f"keep-{repo}:v1", force=True)


async def failed_start(engine, node, image: str, auth_for=None, caplog=None) -> tuple[str, Recorder, DockerRuntime]:
    rec = Recorder()
    rt = runtime(node, rec, auth_for)
    sp = spec(image)
    async with trio.open_nursery() as n:
        await n.start(rt.run)
        rt.start(claim(node, sp), sp)
        await until(lambda: "web/0" in rec.gave_up, timeout=90)
        assert rt.slot_states()["web/0"][0] == "failed"
        assert await running(rt, "web/0") == []
        n.cancel_scope.cancel()
    return rec.gave_up["web/0"], rec, rt


async def test_an_unknown_tag_fails_the_slot_with_the_registrys_answer(engine, node, registries):
    reg = registries[0]
    publish(engine, reg, build_variant(engine, f"tag-{node}"), f"tags-{node}", "1")
    image = f"{reg.host}/tags-{node}:nope"
    reason, _, _ = await failed_start(engine, node, image)
    assert reason.startswith(f"image {image} could not be pulled on {node}: "), reason
    assert "not found" in reason or "manifest unknown" in reason, reason


async def test_a_wrong_password_fails_the_slot_and_no_password_is_told(engine, node, registries, tmp_path, caplog):
    reg = registries[1]
    ref = publish(engine, reg, build_variant(engine, f"auth-{node}"), f"auth-{node}", "1")
    wrong = tmp_path / "wrong.pass"
    wrong.write_text("not-the-password-7731\n")
    bad = images_config({"registries": {reg.host: {"username": USER, "password_file": str(wrong)}},
                         "docker_config": str(tmp_path / "none.json")})
    caplog.set_level(logging.DEBUG)
    reason, rec, rt = await failed_start(engine, node, ref, auth_for=bad.auth_for)
    assert reason.startswith(f"image {ref} could not be pulled on {node}: "), reason
    assert "unauthorized" in reason or "authentication required" in reason, reason
    # The right password (read from its file at pull time) gets it.
    good = images_config({"registries": {reg.host: {"username": USER, "password_file": str(reg.password_file)}},
                          "docker_config": str(tmp_path / "none.json")})
    rec2 = Recorder()
    rt2 = runtime(node, rec2, good.auth_for)
    sp = spec(ref)
    async with trio.open_nursery() as n:
        await n.start(rt2.run)
        rt2.start(claim(node, sp, index=1), sp)
        await until(lambda: running(rt2, "web/1"), timeout=60)
        n.cancel_scope.cancel()
    told = repr((reason, rec.pulls, rec2.pulls, rt.history(), rt2.history(), rt2.stats(), caplog.text))
    assert "not-the-password-7731" not in told and PASSWORD not in told
    engine.images.remove(ref, force=True)


async def test_a_stopped_registry_fails_the_slot_saying_it_cannot_be_reached(engine, node, tmp_path_factory):
    reg = Registry(tmp_path_factory.mktemp("stopped"), "gone", False)
    reg.up()
    try:
        ref = publish(engine, reg, build_variant(engine, f"gone-{node}"), f"gone-{node}", "1")
    finally:
        reg.down()
    reason, _, _ = await failed_start(engine, node, ref)
    assert reason.startswith(f"image {ref} could not be pulled on {node}: "), reason
    assert "connection refused" in reason, reason
