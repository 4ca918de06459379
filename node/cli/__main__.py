"""`python -m node.cli ...` runs the `shoal` command."""

from node.cli.main import main

main()
