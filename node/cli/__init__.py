"""The `shoal` command line (node.cli.main) and what only it uses: Compose
import, live progress, the event monitor."""
