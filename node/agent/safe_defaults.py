"""The safe default for gossip: no key, no network.

How this works: without a key (`encrypt` or `keyring_file`) anyone who can
send a datagram to the gossip port can join the cluster and rewrite its
jobs.  So a config that would gossip unencrypted on an address that is not
loopback, as its bind or its advertise address (the default bind 0.0.0.0 is
one), is refused by node.agent.config with `unencrypted_refusal`'s text,
which names the fixes: a key from `shoal keygen`, a loopback address, or the
explicit `insecure_no_encryption = true` (`--insecure-no-encryption`).  With
that flag the agent runs and logs `insecure_warning` at start.  On loopback
no key is needed (the quickstart, the tests).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from node.agent.config import AgentConfig


def unencrypted_exposure(cfg: AgentConfig) -> str | None:
    """The non-loopback gossip address (`bind 0.0.0.0:7946`, `advertise
    10.0.0.1:7946`) this config would use without a key; None if it has a
    key or stays on loopback."""
    if cfg.encrypted:
        return None
    if not cfg.bind.is_loopback:
        return f"bind {cfg.bind}"
    if cfg.advertise is not None and not cfg.advertise.is_loopback:
        return f"advertise {cfg.advertise}"
    return None


def insecure_warning(cfg: AgentConfig) -> str | None:
    """The warning to log at start when gossip is knowingly unencrypted off
    loopback (`insecure_no_encryption`); None otherwise."""
    exposed = unencrypted_exposure(cfg)
    if exposed is None:
        return None
    return (f"INSECURE: gossip on {exposed} is NOT ENCRYPTED (insecure_no_encryption is set): anyone "
            "who can reach this port can join the cluster, read its gossip and rewrite its jobs.  "
            "Make a key with `shoal keygen` and start every agent with --encrypt KEY.")


def unencrypted_refusal(cfg: AgentConfig) -> str | None:
    """Why this config must not start (the text of the ConfigError on
    `encrypt`), or None if it may."""
    exposed = unencrypted_exposure(cfg)
    if exposed is None or cfg.insecure_no_encryption:
        return None
    return (f"refusing to gossip without encryption on non-loopback {exposed}: anyone who can reach that "
            "port could join the cluster and rewrite its jobs.  Make a key with `shoal keygen` and give "
            "every agent the same one (--encrypt KEY, or encrypt = \"KEY\" in the config file); or bind "
            "to 127.0.0.1 for a cluster on one machine; or, to run unencrypted on a network you trust, "
            "start with --insecure-no-encryption (config: insecure_no_encryption = true)")
