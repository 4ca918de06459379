"""shoal's agent: everything that does I/O around the pure cores.

Modules, one concern each: `config` (settings), `transport` (UDP/TCP),
`agent` (the pump task that owns the gossip core), `keys` (keyring file and
cluster-wide rotation), `tags` (Serf-style node metadata), `metrics`,
`eventlog`, `api` (HTTP), `cli` (the `shoal` command).
"""
