"""Node tags carried in memberlist's 512-byte node metadata, the way Serf does it.

How this works: Serf stores a node's tags as `0xFF` followed by a msgpack
`map[string]string` in legacy raw-string form (go-msgpack defaults, i.e.
`use_bin_type=False`).  Encoding our tags the same way lets `serf members`
show a shoal agent's tags, and lets us read a Serf agent's.  Metadata that does
not start with 0xFF is, as in Serf, read as the legacy `{"role": <meta>}`.
Every shoal agent carries at least `role=shoal` and `api=<its API address>`.
Tags must fit in `META_MAX_BYTES` (512) including the magic byte.
"""

from __future__ import annotations

import msgpack

from gossip.config import META_MAX_BYTES

TAG_MAGIC = 0xFF


class TagsTooLarge(ValueError):
    pass


def encode_tags(tags: dict[str, str]) -> bytes:
    body = msgpack.packb(dict(sorted(tags.items())), use_bin_type=False)
    meta = bytes([TAG_MAGIC]) + body
    if len(meta) > META_MAX_BYTES:
        raise TagsTooLarge(f"tags encode to {len(meta)} bytes; the limit is {META_MAX_BYTES}")
    return meta


def decode_tags(meta: bytes) -> dict[str, str]:
    """Never raises: undecodable metadata comes back as {"role": <text>}."""
    if not meta:
        return {}
    if meta[0] != TAG_MAGIC:
        return {"role": meta.decode("utf-8", "replace")}
    try:
        obj = msgpack.unpackb(meta[1:], raw=True, strict_map_key=False)
    except Exception:
        return {}
    if not isinstance(obj, dict):
        return {}
    out: dict[str, str] = {}
    for k, v in obj.items():
        if isinstance(k, bytes) and isinstance(v, bytes):
            out[k.decode("utf-8", "replace")] = v.decode("utf-8", "replace")
    return out
