"""Errors the agent's operations raise and the HTTP API maps to statuses.

How this works: a small module of exception types only, so that both the
agent (which raises them) and node.api (which turns them into 404 / 409 / 503)
import it at top level without importing each other.
"""

from __future__ import annotations


class StateWriteError(Exception):
    """A job write was not made durable (HTTP 503): nothing acknowledged."""


class WriteSuperseded(Exception):
    """A job write lost to a newer entry for the same name (HTTP 409): it is
    durable here but did not take effect; the message names the winner."""


class JobNotFound(LookupError):
    """No live job of that name (HTTP 404)."""


class AgentStarting(RuntimeError):
    """The agent has no node core yet (HTTP 503): ask again in a moment."""


class ConfigError(ValueError):
    """A setting is invalid.  `field` names it; str() starts with it."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
