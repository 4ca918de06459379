"""The agent's tuning tables: `[cluster]`, `[placement]` and `[containers]`.

How this works: each table of the config file becomes one frozen value the
node core takes (node.core.config.ClusterConfig, auction.placement.PlacementConfig,
auction.container_policy.ContainerPolicy), with the dataclass's field names as
keys.  A value must have the kind of the field's default and be positive
(zero only where ZERO_ALLOWED says it means something); unknown keys and the
FIXED_SETTINGS are refused; every error is a ConfigError naming
`table.field`.  What each setting means, its default and its formula:
docs/configuration.md.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, fields, replace
from typing import Any

from auction.container_policy import ContainerPolicy, PolicyError
from auction.placement import PlacementConfig
from node.agent.errors import ConfigError
from node.core.config import ClusterConfig


# Fields of the two dataclasses an operator may not set, and why.
FIXED_SETTINGS = {
    "cluster.max_spec_bytes": "a protocol bound: job specs are validated against auction.spec.MAX_SPEC_BYTES "
                              "everywhere, and a node with a lower limit would drop its peers' valid "
                              "entries, so its job store would never converge",
}
# Placement settings whose default depends on the gossip profile (the rest
# are the same on every profile).  `wan` is for links of tens to hundreds of
# milliseconds: a round must outlast a few round trips, or bids arrive after
# it closed and their nodes count as silent (the simulator's stack of ten
# spread services over 50 ms links put 7-8 of 30 on the fullest of five
# nodes with a 0.5 s round, 6 on each with 1-2 s: docs/configuration.md),
# and a claim's broadcast takes seconds to come back.  An operator's own
# value in [placement] still wins.
PLACEMENT_BY_PROFILE: dict[str, dict[str, float]] = {
    "wan": {"auction_ttl_s": 2.0, "claim_wait_s": 10.0},
}
# Settings for which zero is a meaningful value (see docs/configuration.md);
# every other one must be positive.
ZERO_ALLOWED = frozenset({"cluster.status_min_interval_s", "cluster.status_slot_min_interval_s",
                          "cluster.status_digest_quiet_s"})
# (smaller, larger): the first must not exceed the second.
ORDERED_PAIRS = (("cluster.status_digest_quiet_s", "cluster.status_digest_max_delay_s"),
                 ("placement.min_backoff_s", "placement.max_backoff_s"))


def settable(table: str, cls: type) -> tuple[str, ...]:
    """The field names of `cls` that the `[table]` of the config file takes."""
    return tuple(f.name for f in fields(cls) if f"{table}.{f.name}" not in FIXED_SETTINGS)


def toml_value(value: Any) -> str:
    """A value as the user wrote it in TOML, for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value[:64])
    if isinstance(value, (int, float)):
        return repr(value)
    return "a table" if isinstance(value, dict) else "an array" if isinstance(value, list) else type(value).__name__


def _tuning_value(path: str, value: Any, default: Any) -> Any:
    """`value` checked against the kind of the field's default."""
    lowest = "a non-negative" if path in ZERO_ALLOWED else "a positive"
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(path, f"must be true or false, got {toml_value(value)}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(path, f"must be {lowest} integer, got {toml_value(value)}")
        number: float = value
    else:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(path, f"must be {lowest} number, got {toml_value(value)}")
        number = float(value)
    if number < 0 or (number == 0 and path not in ZERO_ALLOWED):
        raise ConfigError(path, f"must be {lowest} {'integer' if isinstance(default, int) else 'number'}, "
                                f"got {toml_value(value)}")
    return number


def _tuning(table: str, cls: type, raw: Any, defaults: Any = None) -> Any:
    """An instance of `cls` from the raw TOML table `[table]` over `defaults`
    (None: the dataclass's own)."""
    defaults = cls() if defaults is None else defaults
    if raw is None:
        return defaults
    if not isinstance(raw, dict):
        raise ConfigError(table, f"expected a table of settings ([{table}]), got {toml_value(raw)}")
    names = settable(table, cls)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        path = f"{table}.{name}"
        if path in FIXED_SETTINGS:
            raise ConfigError(path, f"cannot be set: {FIXED_SETTINGS[path]}")
        if name not in names:
            raise ConfigError(path, f"unknown setting; [{table}] takes {', '.join(names)}")
        values[name] = _tuning_value(path, value, getattr(defaults, name))
    result = replace(defaults, **values)
    for small, large in ORDERED_PAIRS:
        if small.startswith(table + ".") and large.startswith(table + "."):
            a, b = (getattr(result, p.split(".", 1)[1]) for p in (small, large))
            if a > b:  # blame the one the file set (the smaller if both)
                if small.split(".", 1)[1] in values:
                    raise ConfigError(small, f"must not exceed {large} ({b:g}), got {a:g}")
                raise ConfigError(large, f"must be at least {small} ({a:g}), got {b:g}")
    return result


def cluster_config(raw: Any = None) -> ClusterConfig:
    """The `[cluster]` table (as parsed from TOML) as a ClusterConfig;
    ConfigError naming `cluster.FIELD` if a value is wrong."""
    return _tuning("cluster", ClusterConfig, raw)


def placement_defaults(profile: str = "lan") -> PlacementConfig:
    """The placement settings a gossip profile starts from."""
    return replace(PlacementConfig(), **PLACEMENT_BY_PROFILE.get(profile, {}))


def placement_config(raw: Any = None, profile: str = "lan") -> PlacementConfig:
    """The `[placement]` table (as parsed from TOML) as a PlacementConfig,
    over the profile's defaults; ConfigError naming `placement.FIELD` if a
    value is wrong."""
    return _tuning("placement", PlacementConfig, raw, placement_defaults(profile))


def container_policy(raw: Any = None) -> ContainerPolicy:
    """The `[containers]` table (as parsed from TOML) as the node's
    ContainerPolicy; ConfigError naming `containers.FIELD` if a value is wrong."""
    try:
        return ContainerPolicy.from_table(raw)
    except PolicyError as e:
        raise ConfigError(e.field, e.message) from None


def tuning_json(cluster: ClusterConfig, placement: PlacementConfig) -> dict[str, dict[str, Any]]:
    """The settings in effect, as `GET /v1/agent/self` reports them."""
    return {"cluster": asdict(cluster), "placement": asdict(placement)}
