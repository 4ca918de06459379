"""A job's stack, by its name: the one rule `shoal stack`, DNS and the runtime share.

How this works: a stack (a Compose file deployed with `shoal stack deploy`)
is nothing but a name prefix.  Service `db` of stack `shop` is job
`shop-db`; a stack name is lowercase letters and digits only, so the part
of a job's name before its first `-` is its stack and the rest its service
(`shop-db-main`: stack `shop`, service `db-main`).  Nothing else records a
stack.  DNS publishes each such job under its service name inside the
stack's domain too (`db.shop.stack.shoal`, node.dns.zone), and the runtime
puts that domain first in the search list of the stack's containers
(node.runtime.network), so a Compose service reaches another one by its
service name (`db`), as it does under Compose and Swarm.  Pure: no I/O.
"""

from __future__ import annotations

import re

STACK_RE = re.compile(r"[a-z0-9]+", re.ASCII)


def stack_of(job: str) -> str | None:
    """The stack a job belongs to by the naming convention, or None."""
    stack, dash, rest = job.partition("-")
    return stack if dash and rest and STACK_RE.fullmatch(stack) else None


def service_of(job: str) -> str | None:
    """The service part of a stack's job (`shop-db-main` -> `db-main`), or None."""
    return job.partition("-")[2] if stack_of(job) is not None else None


def stack_search_domain(job: str, stack_domain: str) -> str | None:
    """The search domain of a stack job's containers (`shop.stack.shoal` for
    `shop-web` in `stack.shoal`), or None for a job in no stack."""
    stack = stack_of(job)
    return f"{stack}.{stack_domain}" if stack is not None and stack_domain else None
