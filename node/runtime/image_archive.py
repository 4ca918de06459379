"""Image archives (`docker save` tars) moved between nodes: what makes one
trustworthy, and the engine calls at both ends.

How this works: an image's ID is the SHA-256 of its config blob, and the
config lists the digest of every layer's uncompressed content
(`rootfs.diff_ids`).  `check_archive(path, image_id, ref)` opens a received
tar, finds the manifest entry tagged `ref` (or the only one), reads the
config file it names and refuses the archive unless that file's SHA-256 is
`image_id` -- the ID the receiver was told by the holder's listing.  The
engine then checks every layer against the config's diff_ids while it loads
(`docker load` fails on a mismatch), and the receiver inspects the loaded
tag, which must name `image_id`.  So a flipped byte anywhere, a truncated
stream or another image under the same name is refused before anything runs.

Bounds: archives are written to a file as they arrive (never held in
memory), at most `max_bytes` (the holder's size, which the receiver checks
against its free disk first, plus room for the tar's own headers).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from auction.placement import normalize_image

if TYPE_CHECKING:
    import tarfile

MAX_MANIFEST_BYTES = 1 << 20
MAX_CONFIG_BYTES = 16 << 20
CHUNK_BYTES = 1 << 20


def check_archive(path: Path, image_id: str, ref: str) -> str | None:
    """None if the archive at `path` holds `ref` whose config hashes to
    `image_id` ("sha256:<hex>"); else what is wrong with it."""
    import tarfile  # here: an idle agent never loads it (node.api.lean_imports, docker_sdk)

    try:
        with tarfile.open(path, "r:") as tar:
            manifest = _read_member(tar, "manifest.json", MAX_MANIFEST_BYTES)
            if manifest is None:
                return "no manifest.json in the archive"
            entries = json.loads(manifest)
            if not isinstance(entries, list) or not entries:
                return "manifest.json lists no image"
            tagged = [e for e in entries if isinstance(e, dict) and ref in (e.get("RepoTags") or [])]
            entry = tagged[0] if tagged else entries[0] if len(entries) == 1 else None
            if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
                return f"the archive has no image tagged {ref}"
            config = _read_member(tar, entry["Config"], MAX_CONFIG_BYTES)
            if config is None:
                return f"the archive lacks its config {entry['Config']}"
    except (tarfile.TarError, OSError, EOFError) as e:
        return f"not a readable image archive: {e}"
    except (ValueError, UnicodeDecodeError) as e:
        return f"manifest.json is not valid JSON: {e}"
    got = "sha256:" + hashlib.sha256(config).hexdigest()
    if got != image_id:
        return f"its config hashes to {got[:19]}..., not the image ID {image_id[:19]}..."
    return None


def _read_member(tar: tarfile.TarFile, name: str, limit: int) -> bytes | None:
    try:
        info = tar.getmember(name)
    except KeyError:
        return None
    if not info.isfile() or info.size > limit:
        return None
    f = tar.extractfile(info)
    return None if f is None else f.read()


def local_image(rows: list[dict[str, Any]], ref: str) -> dict[str, Any] | None:
    """{"ref", "id", "size"} of `ref` (a normalized tag) in the engine's image
    rows (`APIClient.images()`), or None."""
    for row in rows:
        tags = [normalize_image(t) for t in row.get("RepoTags") or [] if t and t != "<none>:<none>"]
        if ref in tags:
            return {"ref": ref, "id": row.get("Id", ""), "size": int(row.get("Size") or 0)}
    return None
