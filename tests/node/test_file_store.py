"""A node's copies of jobs' files (node.runtime.files): written once, whole, and cleared when unused."""

from __future__ import annotations

import os
import stat

from auction.files import FileSpec
from node.runtime.files import COLLECT_GRACE_S, FileStore, files_refusal
from auction.spec import validate

CONF = FileSpec("app.conf", "/etc/app.conf", "a = 1\n")
KEY = FileSpec("key", "/run/secrets/key", "k", 0o400)


def test_each_file_is_written_once_with_its_mode_and_mounted_read_only(tmp_path):
    store = FileStore(tmp_path / "files")
    mounts = store.mounts((CONF, KEY))
    assert [(m["Target"], m["ReadOnly"], m["Type"]) for m in mounts] == [
        ("/etc/app.conf", True, "bind"), ("/run/secrets/key", True, "bind")]
    assert open(mounts[0]["Source"]).read() == "a = 1\n"
    assert stat.S_IMODE(os.stat(mounts[1]["Source"]).st_mode) == 0o400
    assert stat.S_IMODE(os.stat(tmp_path / "files").st_mode) == 0o700
    again = FileStore(tmp_path / "files").mounts((FileSpec("other-name", "/x", "a = 1\n"),))
    assert again[0]["Source"] == mounts[0]["Source"]        # the same text is one file on the node
    assert sorted(os.listdir(tmp_path / "files")) == sorted([CONF.digest(), KEY.digest()])


def test_unused_files_go_only_after_the_grace(tmp_path):
    store = FileStore(tmp_path)
    store.mounts((CONF, KEY))
    now = os.stat(store.path(CONF)).st_mtime
    assert store.collect({CONF.digest()}, now=now + 1) == 0                 # a start may still be on its way
    assert store.collect({CONF.digest()}, now=now + COLLECT_GRACE_S + 1) == 1
    assert os.listdir(tmp_path) == [CONF.digest()]


def test_files_need_an_engine_on_this_machine():
    with_files = validate({"name": "web", "image": "x", "files": {"a": {"target": "/a", "content": ""}}})
    assert files_refusal(with_files, "unix:///var/run/docker.sock") is None
    assert files_refusal(validate({"name": "web", "image": "x"}), "tcp://10.0.0.9:2375") is None
    assert files_refusal(with_files, "tcp://10.0.0.9:2375") == (
        "the job has files, which need the engine on this machine (a unix socket), not tcp://10.0.0.9:2375")
