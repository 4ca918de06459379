"""A Compose service's process options as the job's container options (auction.container_options).

How this works: `convert_options(body, put, put_table, report, path)`
reads eight keys of one service and hands each to `put(key, value,
compose_path)` (a single value) or `put_table` (a mapping): the service
converter's, which remember where each field came from; the job validator
checks the values.

    working_dir, init, shm_size     -> the same fields (`shm_size: 1g` is
                                       Docker's size, as the validator reads it)
    ulimits                         -> ulimits (`nofile: 65536` or
                                       `nofile: {soft: 1024, hard: 2048}`)
    extra_hosts                     -> extra_hosts: a list of `host:address`
                                       (or `host=address`; the first `:` or `=`
                                       splits, so `host:::1` is IPv6) or a mapping
    labels                          -> container_labels: a list of `key=value`
                                       or a mapping; numbers and booleans become
                                       text, as Compose writes them
    sysctls                         -> sysctls: a list of `name=value` or a
                                       mapping (the container's own namespaces)
    hostname                        -> hostname ({job}, {index}, {node} filled in
                                       per replica; Swarm's {{.Task.Slot}}
                                       templates are an error saying so)

(`deploy.labels` are Swarm's labels of the service, not of its containers:
a warning, as any key not read.)  Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from auction.container_options import MAX_CONTAINER_LABELS, MAX_EXTRA_HOSTS, MAX_SYSCTLS
from auction.resources import json_kind
from node.cli.compose_report import Report, got, join_path

KEYS = ("working_dir", "init", "shm_size", "ulimits", "extra_hosts", "labels", "sysctls", "hostname")
Put = Callable[[str, Any, str], None]


def convert_options(body: dict[Any, Any], put: Put, put_table: Put, report: Report, service_path: str) -> None:
    for key in ("working_dir", "init", "shm_size"):
        if key in body:
            put(key, body[key], join_path(service_path, key))
    if "ulimits" in body:
        path = join_path(service_path, "ulimits")
        if isinstance(body["ulimits"], dict):
            put_table("ulimits", body["ulimits"], path)     # the validator bounds it (names, shape)
        else:
            report.error(path, f"must be a mapping of limit names, got {json_kind(body['ulimits'])}")
    if "extra_hosts" in body:
        path = join_path(service_path, "extra_hosts")
        if (hosts := _pairs(body["extra_hosts"], ":=", MAX_EXTRA_HOSTS, report, path, "host:address")) is not None:
            put_table("extra_hosts", hosts, path)
    if "hostname" in body:
        path = join_path(service_path, "hostname")
        if isinstance(body["hostname"], str) and "{{" in body["hostname"]:
            report.error(path, "Swarm's templates are not read: write {job}, {index} (from 0) or {node}, "
                               "like db-{index}")
        else:
            put("hostname", body["hostname"], path)
    if "sysctls" in body:
        path = join_path(service_path, "sysctls")
        if (settings := _pairs(body["sysctls"], "=", MAX_SYSCTLS, report, path, "name=value")) is not None:
            put_table("sysctls", settings, path)
    if "labels" in body:
        path = join_path(service_path, "labels")
        if (labels := _pairs(body["labels"], "=", MAX_CONTAINER_LABELS, report, path, "key=value")) is not None:
            put_table("container_labels", {k: _text(v) for k, v in labels.items()}, path)


def _pairs(value: Any, separators: str, most: int, report: Report, path: str, form: str) -> dict[str, Any] | None:
    """A Compose list of `a<sep>b` strings or a mapping, as a mapping; None after its problem."""
    if isinstance(value, dict):
        return value if len(value) <= most else _too_many(report, path, most, len(value))
    if not isinstance(value, list):
        report.error(path, f"must be a list of {form} or a mapping, got {json_kind(value)}")
        return None
    if len(value) > most:
        return _too_many(report, path, most, len(value))
    out: dict[str, Any] = {}
    for i, item in enumerate(value):
        cut = min((j for j in (item.find(s) for s in separators) if j > 0), default=-1) \
            if isinstance(item, str) else -1
        if cut < 0:
            report.error(f"{path}[{i}]", f"must be {form}, got {got(item)}")
            return None
        out[item[:cut]] = item[cut + 1:]
    return out


def _too_many(report: Report, path: str, most: int, n: int) -> None:
    report.error(path, f"at most {most} entries (got {n})")
    return None


def _text(value: Any) -> Any:
    """A label's value as Compose writes it: numbers and booleans as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return "" if value is None else value
