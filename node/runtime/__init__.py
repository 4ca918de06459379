"""Container runtimes: the Docker driver and the fake used by tests and by
agents without Docker."""
