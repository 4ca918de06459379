"""The agent: composition of the core with sockets, state dir, runtime and API,
and the one pump task (node.agent.agent).  Also its configuration, key
rotation, tags and the machine probe."""
