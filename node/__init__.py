"""shoal's agent: everything that does I/O around the pure cores.

Modules, one concern each: `config` (settings), `transport` (UDP/TCP),
`agent` (the pump task that owns the gossip core), `keys` (keyring file and
cluster-wide rotation), `tags` (Serf-style node metadata), `metrics`,
`eventlog`, `api` (HTTP), `cli` (the `shoal` command).
"""

# The package version (pyproject.toml reads it from here); gossiped in each
# node's status.  A constant, so that an agent need not import
# importlib.metadata (zipfile, email, ...) to know it.
__version__ = "0.1.0"
