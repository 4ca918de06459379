"""The node core: pure, sans-I/O cluster state (gossip + job store + node
statuses + placement), driven by `NodeCore.feed(input, now)` and read through
its snapshot.  Fenced by tests/test_purity.py like gossip/ and auction/."""
