"""The HTTP API (node.api.server), the views it returns, blocking queries and
the status page /ui."""
