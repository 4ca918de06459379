"""What makes a received image archive acceptable (node/runtime/image_archive.py):
its config must hash to the image ID the holder listed."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

from node.runtime.image_archive import check_archive, local_image

CONFIG = json.dumps({"rootfs": {"type": "layers", "diff_ids": ["sha256:" + "a" * 64]}}).encode()
IMAGE_ID = "sha256:" + hashlib.sha256(CONFIG).hexdigest()


def archive(tmp_path, files: dict[str, bytes], name="a.tar"):
    path = tmp_path / name
    with tarfile.open(path, "w") as tar:
        for member, data in files.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def manifest(tags=("reg:5000/app:1",), config=f"{IMAGE_ID[7:]}.json"):
    return json.dumps([{"Config": config, "RepoTags": list(tags), "Layers": ["l/layer.tar"]}]).encode()


def test_an_archive_whose_config_hashes_to_the_id_is_accepted(tmp_path):
    path = archive(tmp_path, {f"{IMAGE_ID[7:]}.json": CONFIG, "manifest.json": manifest()})
    assert check_archive(path, IMAGE_ID, "reg:5000/app:1") is None


def test_a_changed_config_another_tag_or_a_cut_archive_is_refused(tmp_path):
    tampered = archive(tmp_path, {f"{IMAGE_ID[7:]}.json": CONFIG.replace(b"a", b"b"), "manifest.json": manifest()})
    assert "not the image ID" in check_archive(tampered, IMAGE_ID, "reg:5000/app:1")
    other = archive(tmp_path, {"x.json": CONFIG, "y.json": CONFIG,
                               "manifest.json": json.dumps([{"Config": "x.json", "RepoTags": ["a:1"]},
                                                            {"Config": "y.json", "RepoTags": ["b:1"]}]).encode()},
                    name="o.tar")
    assert "no image tagged reg:5000/app:1" in check_archive(other, IMAGE_ID, "reg:5000/app:1")
    whole = archive(tmp_path, {f"{IMAGE_ID[7:]}.json": CONFIG, "manifest.json": manifest()}, name="w.tar")
    cut = tmp_path / "cut.tar"
    cut.write_bytes(whole.read_bytes()[:700])
    assert check_archive(cut, IMAGE_ID, "reg:5000/app:1") is not None
    assert "no manifest.json" in check_archive(archive(tmp_path, {"x": b"1"}, name="n.tar"), IMAGE_ID, "r:1")


def test_local_image_finds_a_tag_in_the_engines_listing():
    rows = [{"Id": "sha256:1", "RepoTags": ["<none>:<none>"], "Size": 5},
            {"Id": "sha256:2", "RepoTags": ["busybox:latest", "docker.io/library/app:2"], "Size": 7}]
    assert local_image(rows, "app:2") == {"ref": "app:2", "id": "sha256:2", "size": 7}
    assert local_image(rows, "nope:1") is None
