"""How one agent proves to another that a forwarded API request comes from a
member of the cluster, without ever carrying the caller's API token.

How this works: both agents derive the same credential key from each gossip
key with HKDF-SHA256 (info `PEER_KEY_INFO`), so the credential is bound to
the cluster's keyring and never equals the key itself.  The sender signs
with the key derived from its primary gossip key; the receiver accepts a
signature made with any key of its ring (as gossip does during a rotation).

A credential is three headers:

    X-Shoal-Peer       the sending agent's name
    X-Shoal-Peer-Time  the sender's wall clock, unix milliseconds
    X-Shoal-Peer-Auth  hex HMAC-SHA256 over  METHOD \\n PATH?QUERY \\n TIME \\n NAME

The receiver refuses a credential whose time is more than
`PEER_AUTH_WINDOW_S` from its own clock (so a captured one is stale within
seconds), one for another method or path (it cannot be replayed to another
endpoint), and one signed with a key not in its ring.  Within the window the
same request can be replayed verbatim; the API accepts a credential only on
the read-only or idempotent routes agents forward to one another
(node.api.server), so a replay can only repeat such a request.

With TLS on the API the agents also present their certificates to each
other (mutual TLS, node.api.tls); either proof is enough for those routes.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping

PEER_HEADER = "X-Shoal-Peer"
PEER_TIME_HEADER = "X-Shoal-Peer-Time"
PEER_AUTH_HEADER = "X-Shoal-Peer-Auth"
PEER_KEY_INFO = b"shoal api peer credential v1"
PEER_AUTH_WINDOW_S = 30.0
PEER_NAME_MAX_BYTES = 255


class PeerAuthError(ValueError):
    """A peer credential is missing or not valid; str() says why."""


def derive_peer_key(gossip_key: bytes) -> bytes:
    """The credential key for one gossip key (HKDF-SHA256, 32 bytes)."""
    # Imported here: only an agent with a gossip key gets this far.
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=PEER_KEY_INFO).derive(gossip_key)


def _mac(peer_key: bytes, method: str, target: str, time_ms: int, name: str) -> str:
    text = f"{method.upper()}\n{target}\n{time_ms}\n{name}".encode()
    return hmac.new(peer_key, text, hashlib.sha256).hexdigest()


def sign(gossip_key: bytes, method: str, target: str, name: str, now_ms: int) -> dict[str, str]:
    """The headers proving that `name` (holding gossip_key) sends `method target`
    (target: the path with its query string, as sent)."""
    mac = _mac(derive_peer_key(gossip_key), method, target, now_ms, name)
    return {PEER_HEADER: name, PEER_TIME_HEADER: str(now_ms), PEER_AUTH_HEADER: mac}


def verify(gossip_keys: Iterable[bytes], headers: Mapping[str, str], method: str, target: str,
           now_ms: int) -> str:
    """The sending agent's name if `headers` hold a valid credential for
    `method target` under one of gossip_keys; else PeerAuthError."""
    name = headers.get(PEER_HEADER.lower())
    time_text = headers.get(PEER_TIME_HEADER.lower())
    given = headers.get(PEER_AUTH_HEADER.lower())
    if name is None or time_text is None or given is None:
        raise PeerAuthError("no peer credential")
    if not name or len(name.encode()) > PEER_NAME_MAX_BYTES:
        raise PeerAuthError("peer credential: bad agent name")
    if not time_text.isdigit() or len(time_text) > 16:
        raise PeerAuthError("peer credential: bad time")
    skew_s = abs(now_ms - int(time_text)) / 1000.0
    if skew_s > PEER_AUTH_WINDOW_S:
        raise PeerAuthError(f"peer credential is {skew_s:.0f} s from this agent's clock "
                            f"(the window is {PEER_AUTH_WINDOW_S:g} s)")
    for key in gossip_keys:
        if hmac.compare_digest(_mac(derive_peer_key(key), method, target, int(time_text), name), given):
            return name
    raise PeerAuthError("peer credential does not verify under this agent's keys")
