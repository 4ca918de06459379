"""Metrics (Prometheus text) and the agent's event log."""
