"""State on disk: the job store and the slot claims in SQLite (WAL), and the
state dir that holds them."""
