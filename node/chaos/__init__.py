"""Chaos testing: seeded fault campaigns with invariant verdicts.

faultplan (a seeded fault schedule), invariants (the rules, as functions of
observations), simwatch and simrun (one seed on the simulator), sweep (many
seeds over the machine's cores, and the summary), audit (a live cluster).
The `shoal chaos` commands (node.cli.chaos) import these lazily.
"""
