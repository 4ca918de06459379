"""Job spec validation: every field's rules, all problems at once, canonical form.

How this works: one test (or one parametrized table) per rule of
docs/jobspec.md, each asserting the exact field path of the problem.  Then the
whole-spec behaviours: several mistakes give that many problems, unknown
fields suggest the closest name, sizes are bounded, TOML and JSON entry
points, and the canonical form (to_dict -> validate round trip, stable
hashes, one golden hash).  Hypothesis throws arbitrary JSON-like values and
mutated valid specs at `validate`: it returns a JobSpec that round-trips, or
raises SpecError, and never anything else.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck as HypothesisHealthCheck
from hypothesis import given, settings
from hypothesis import strategies as st

from auction.resources import GiB, MiB, Resources
from auction.spec import (
    MAX_COMMAND_ARGS, MAX_CONSTRAINTS, MAX_ENV_ENTRIES, MAX_NAME_CHARS, MAX_PROBLEMS,
    MAX_SPEC_BYTES, Constraint, HealthCheck, JobSpec, Op, Problem, RestartMode, RestartPolicy,
    SpecError, Strategy, from_json, label_key_problem, label_value_problem, load_toml, validate,
)

ROOT = Path(__file__).resolve().parents[2]
BASE = {"name": "web", "image": "busybox:1.36"}


def spec(**fields) -> dict:
    return {**BASE, **fields}


def problems(raw) -> list[Problem]:
    with pytest.raises(SpecError) as info:
        validate(raw)
    return info.value.problems


def paths(raw) -> list[str]:
    return [p.path for p in problems(raw)]


def one_problem(raw, path: str, *fragments: str) -> Problem:
    found = problems(raw)
    assert [p.path for p in found] == [path], found
    for fragment in fragments:
        assert fragment in found[0].message, found[0]
    return found[0]


# ---- defaults ------------------------------------------------------------------

def test_minimal_spec_gets_the_documented_defaults():
    s = validate(BASE)
    assert s == JobSpec(name="web", image="busybox:1.36")
    assert s.command is None and s.env == () and s.health is None
    assert s.cpu_millis == 100 and s.memory_bytes == 64 * MiB
    assert s.replicas == 1 and s.constraints == () and s.spread is None and s.max_per_node is None
    assert s.restart == RestartPolicy(RestartMode.ALWAYS, None, 1.0, 60.0)
    assert s.strategy is Strategy.BINPACK
    assert s.demand() == Resources(100, 64 * MiB, 0)


def test_full_spec():
    s = validate(spec(
        command=["httpd", "-f", "-p", "8080"], env={"PORT": "8080", "MODE": "demo"},
        cpu=0.25, memory="32MiB", replicas=3, constraints=["arch == amd64", "zone in [a, b]"],
        spread="rack", max_per_node=2, restart={"policy": "on-failure", "max_attempts": 5},
        health={"command": ["wget", "-q", "-O-", "http://127.0.0.1:8080/"], "retries": 2},
        strategy="spread",
    ))
    assert s.command == ("httpd", "-f", "-p", "8080")
    assert s.env == (("MODE", "demo"), ("PORT", "8080"))
    assert s.env_map == {"PORT": "8080", "MODE": "demo"}
    assert s.demand() == Resources(250, 32 * MiB)
    assert s.constraints == (Constraint("arch", Op.EQ, ("amd64",)), Constraint("zone", Op.IN, ("a", "b")))
    assert (s.spread, s.max_per_node, s.strategy) == ("rack", 2, Strategy.SPREAD)
    assert s.restart == RestartPolicy(RestartMode.ON_FAILURE, 5)
    assert s.health == HealthCheck(("wget", "-q", "-O-", "http://127.0.0.1:8080/"), retries=2)


def test_jobspec_is_frozen_and_hashable():
    s = validate(spec(constraints=["rack == a"], health={"command": "true"}))
    with pytest.raises(AttributeError):
        s.replicas = 3  # type: ignore[misc]
    assert hash(s) == hash(validate(s.to_dict()))


# ---- name and image ------------------------------------------------------------

@pytest.mark.parametrize("name", ["web", "a", "0", "web-1", "a1-b2-c3", "9lives", "x" * MAX_NAME_CHARS])
def test_name_accepts(name):
    assert validate(spec(name=name)).name == name


@pytest.mark.parametrize("name", ["Web", "web_1", "-web", "web-", "we b", "web.com", "", "x" * 64, "wéb"])
def test_name_rejects(name):
    one_problem(spec(name=name), "name")


@pytest.mark.parametrize("name", [None, 3, True, ["web"], {"a": "b"}])
def test_name_must_be_a_string(name):
    one_problem(spec(name=name), "name", "must be a string")


def test_name_and_image_are_required():
    found = problems({})
    assert [(p.path, p.message) for p in found] == [("name", "required"), ("image", "required")]


@pytest.mark.parametrize("image", ["busybox", "busybox:1.36", "shoal-demo:latest",
                                   "registry.local:5000/team/app:v1.2",
                                   "alpine@sha256:" + "a" * 64, "Registry.Example/x"])
def test_image_accepts(image):
    assert validate(spec(image=image)).image == image


@pytest.mark.parametrize("image", ["", "busy box", "-busybox", ":latest", "a" * 256, "bad\x00", "tab\there"])
def test_image_rejects(image):
    one_problem(spec(image=image), "image")


# ---- command -------------------------------------------------------------------

def test_command_list_and_string_forms():
    assert validate(spec(command=["sh", "-c", "echo hi; sleep 1"])).command == ("sh", "-c", "echo hi; sleep 1")
    assert validate(spec(command="sh -c 'echo hi; sleep 1'")).command == ("sh", "-c", "echo hi; sleep 1")
    assert validate(spec(command="sleep 3600")).command == ("sleep", "3600")


@pytest.mark.parametrize("command, path, fragment", [
    ([], "command", "empty"),
    ("", "command", "empty"),
    ("   ", "command", "empty"),
    ("sh -c 'unclosed", "command", "No closing quotation"),
    (["sleep", 3600], "command[1]", "must be a string"),
    (["ok", "nul\x00"], "command[1]", "NUL"),
    (["x" * 5000], "command[0]", "at most 4096"),
    (["a"] * (MAX_COMMAND_ARGS + 1), "command", "at most 256 arguments"),
    (42, "command", "list of strings or a string"),
    ({"cmd": "x"}, "command", "list of strings or a string"),
])
def test_command_rejects(command, path, fragment):
    one_problem(spec(command=command), path, fragment)


def test_command_reports_each_bad_argument():
    assert paths(spec(command=["ok", 1, "ok", None])) == ["command[1]", "command[3]"]


# ---- env -----------------------------------------------------------------------

def test_env_is_sorted_and_exact():
    s = validate(spec(env={"Z": "", "A_1": "x=y", "_": "spaces are fine"}))
    assert s.env == (("A_1", "x=y"), ("Z", ""), ("_", "spaces are fine"))


@pytest.mark.parametrize("env, path, fragment", [
    ({"1X": "v"}, "env.1X", "not a variable name"),
    ({"A-B": "v"}, "env.A-B", "not a variable name"),
    ({"": "v"}, 'env[""]', "not a variable name"),
    ({"A.B": "v"}, 'env["A.B"]', "not a variable name"),
    ({"PORT": 8080}, "env.PORT", 'quote it: "8080"'),
    ({"DEBUG": True}, "env.DEBUG", "must be a string, got a boolean"),
    ({"X": ["a"]}, "env.X", "must be a string, got an array"),
    ({"X": "nul\x00"}, "env.X", "NUL"),
    ({"X": "v" * 9000}, "env.X", "at most 8192"),
    ({"SHOAL_PORT_HTTP": "80"}, "env.SHOAL_PORT_HTTP", "SHOAL_* variables are set by shoal"),
    (["A=1"], "env", "must be a table, got an array"),
    ("A=1", "env", "must be a table, got a string"),
])
def test_env_rejects(env, path, fragment):
    one_problem(spec(env=env), path, fragment)


def test_env_entry_count_is_bounded():
    env = {f"V{i}": "x" for i in range(MAX_ENV_ENTRIES)}
    assert len(validate(spec(env=env)).env) == MAX_ENV_ENTRIES
    env["ONE_MORE"] = "x"
    one_problem(spec(env=env), "env", "at most 256 entries")


def test_env_reports_each_bad_entry():
    assert paths(spec(env={"OK": "1", "1BAD": "x", "ALSO_BAD": 2})) == ["env.1BAD", "env.ALSO_BAD"]


# ---- cpu and memory ------------------------------------------------------------

@pytest.mark.parametrize("cpu, millis", [
    (0.1, 100), (0.25, 250), (1, 1000), (1.5, 1500), ("1.5", 1500), ("500m", 500),
    (0.001, 1), (1024, 1_024_000), ("1m", 1),
])
def test_cpu_accepts(cpu, millis):
    assert validate(spec(cpu=cpu)).cpu_millis == millis


@pytest.mark.parametrize("cpu, fragment", [
    (0, "more than 0"), ("0m", "more than 0"), (-1, "negative"), (1025, "at most 1024.0 cpu"),
    (0.0001, "finer than one millicore"), ("2 cores", "unknown unit"), (True, "got a boolean"),
    (float("nan"), "not a finite number"), (None, "got null"), ([1], "got an array"),
])
def test_cpu_rejects(cpu, fragment):
    one_problem(spec(cpu=cpu), "cpu", fragment)


@pytest.mark.parametrize("memory, n", [
    ("32MiB", 32 * MiB), ("64m", 64 * MiB), ("1G", GiB), ("1GB", 10**9), ("6MiB", 6 * MiB),
    (6 * MiB, 6 * MiB), ("1.5GiB", 3 * GiB // 2),
])
def test_memory_accepts(memory, n):
    assert validate(spec(memory=memory)).memory_bytes == n


@pytest.mark.parametrize("memory, fragment", [
    ("4MiB", "at least 6MiB"), (6 * MiB - 1, "at least 6MiB"), ("0", "at least"),
    ("65TiB", "at most 64TiB"), ("12 parsecs", "unknown unit"), (1.5, "got a number"),
    (-5, "negative"), (True, "got a boolean"), ("lots", "not a number"),
])
def test_memory_rejects(memory, fragment):
    one_problem(spec(memory=memory), "memory", fragment)


# ---- replicas, max_per_node, strategy -------------------------------------------

@pytest.mark.parametrize("n", [0, 1, 3, 1000])
def test_replicas_accepts(n):
    assert validate(spec(replicas=n)).replicas == n


@pytest.mark.parametrize("n, fragment", [
    (-1, "between 0 and 1000"), (1001, "between 0 and 1000"), (10**30, "a huge number"),
    (3.0, "must be an integer, got a number"), ("3", "got a string"), (True, "got a boolean"),
])
def test_replicas_rejects(n, fragment):
    one_problem(spec(replicas=n), "replicas", fragment)


def test_max_per_node():
    assert validate(spec(max_per_node=1)).max_per_node == 1
    one_problem(spec(max_per_node=0), "max_per_node", "between 1 and 1000")
    one_problem(spec(max_per_node="2"), "max_per_node", "integer")


def test_strategy():
    assert validate(spec(strategy="binpack")).strategy is Strategy.BINPACK
    assert validate(spec(strategy="spread")).strategy is Strategy.SPREAD
    one_problem(spec(strategy="spreed"), "strategy", "binpack, spread", "did you mean 'spread'?")
    one_problem(spec(strategy="random"), "strategy", "got 'random')")
    one_problem(spec(strategy=1), "strategy", "got an integer")


# ---- constraints and spread ----------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("rack == a", Constraint("rack", Op.EQ, ("a",))),
    ("rack==a", Constraint("rack", Op.EQ, ("a",))),
    ("  zone   !=   eu-1  ", Constraint("zone", Op.NE, ("eu-1",))),
    ("arch in [amd64, arm64]", Constraint("arch", Op.IN, ("amd64", "arm64"))),
    ("arch in amd64,arm64", Constraint("arch", Op.IN, ("amd64", "arm64"))),
    ("arch in [amd64]", Constraint("arch", Op.IN, ("amd64",))),
    ("arch in[amd64 , arm64]", Constraint("arch", Op.IN, ("amd64", "arm64"))),
    ("node.name == node-3", Constraint("node.name", Op.EQ, ("node-3",))),
    ("example.com/tier == gold", Constraint("example.com/tier", Op.EQ, ("gold",))),
    ("version == 1.2+build:7@x", Constraint("version", Op.EQ, ("1.2+build:7@x",))),
])
def test_constraint_parse(text, expected):
    assert Constraint.parse(text) == expected
    assert Constraint.parse(str(expected)) == expected


@pytest.mark.parametrize("text, fragment", [
    ("rack = a", "write '=='"),
    ("rack=a", "write '=='"),
    ("rack", "is not 'LABEL == VALUE'"),
    ("rack == ", "value is empty"),
    ("== a", "is not"),
    ("rack ~= a", "is not"),
    ("rack == a b", "may contain only"),
    ("rack in []", "at least one value"),
    ("rack in [a, b", "must end with ']'"),
    ("rack in a,,b", "value is empty"),
    ("-rack == a", "label '-rack'"),
    ("rack! == a", "label"),
    ("r" * 64 + " == a", "longer than 63"),
    ("rack == " + "v" * 64, "longer than 63"),
    ("rack in " + ",".join(["v"] * 65), "at most 64 values"),
    ("rack == a" + " " * 2000, "longer than 1024"),
])
def test_constraint_parse_rejects(text, fragment):
    with pytest.raises(ValueError, match=None) as info:
        Constraint.parse(text)
    assert fragment in str(info.value)


@pytest.mark.parametrize("text, labels, expected", [
    ("rack == a", {"rack": "a"}, True),
    ("rack == a", {"rack": "b"}, False),
    ("rack == a", {}, False),
    ("rack != a", {"rack": "b"}, True),
    ("rack != a", {"rack": "a"}, False),
    ("rack != a", {}, True),                # a missing label is "not equal"
    ("rack in [a, b]", {"rack": "b"}, True),
    ("rack in [a, b]", {"rack": "c"}, False),
    ("rack in [a, b]", {}, False),
    ("rack == a", {"RACK": "a"}, False),    # labels are case-sensitive
])
def test_constraint_matches(text, labels, expected):
    assert Constraint.parse(text).matches(labels) is expected


def test_constraints_field_reports_each_bad_entry_by_index():
    found = problems(spec(constraints=["rack == a", "zone = b", 7, "arch in [x]", "bad"]))
    assert [p.path for p in found] == ["constraints[1]", "constraints[2]", "constraints[4]"]


def test_constraints_field_shape_and_bound():
    one_problem(spec(constraints="rack == a"), "constraints", "must be a list")
    ok = ["rack == a"] * MAX_CONSTRAINTS
    assert len(validate(spec(constraints=ok)).constraints) == MAX_CONSTRAINTS
    one_problem(spec(constraints=ok + ["rack == a"]), "constraints", "at most 64")


def test_spread():
    assert validate(spec(spread="rack")).spread == "rack"
    assert validate(spec(spread="topology.zone")).spread == "topology.zone"
    one_problem(spec(spread="rack!"), "spread", "letters, digits")
    one_problem(spec(spread=""), "spread")
    one_problem(spec(spread=["rack"]), "spread", "label name")


def test_label_helpers():
    assert label_key_problem("rack") is None
    assert label_key_problem("a b") is not None
    assert label_value_problem("us-east-1a") is None
    assert label_value_problem("") == "is empty"


# ---- restart -------------------------------------------------------------------

def test_restart_forms():
    assert validate(spec(restart={})).restart == RestartPolicy()
    assert validate(spec(restart={"policy": "never"})).restart.policy is RestartMode.NEVER
    r = validate(spec(restart={"policy": "on-failure", "max_attempts": 0, "backoff_s": 2,
                               "max_backoff_s": 30})).restart
    assert r == RestartPolicy(RestartMode.ON_FAILURE, 0, 2.0, 30.0)
    assert isinstance(r.backoff_s, float)


@pytest.mark.parametrize("restart, path, fragment", [
    ({"policy": "on_failure"}, "restart.policy", "did you mean 'on-failure'?"),
    ({"policy": "sometimes"}, "restart.policy", "always, on-failure, never"),
    ({"policy": "always", "max_attempts": 3}, "restart.max_attempts", "only to policy 'on-failure'"),
    ({"max_attempts": 3}, "restart.max_attempts", "only to policy 'on-failure'"),
    ({"policy": "on-failure", "max_attempts": -1}, "restart.max_attempts", "between 0 and"),
    ({"backoff_s": 0}, "restart.backoff_s", "between 0.1 and 3600"),
    ({"backoff_s": "1s"}, "restart.backoff_s", "number of seconds"),
    ({"max_backoff_s": float("inf")}, "restart.max_backoff_s", "between"),
    ({"backoff_s": 10, "max_backoff_s": 5}, "restart.backoff_s", "must not exceed max_backoff_s"),
    ({"max_attempt": 3}, "restart.max_attempt", "did you mean 'max_attempts'?"),
    ("always", "restart", "must be a table"),
])
def test_restart_rejects(restart, path, fragment):
    one_problem(spec(restart=restart), path, fragment)


def test_restart_invalid_policy_is_reported_once():
    # max_attempts is not blamed on a policy that is itself wrong
    assert paths(spec(restart={"policy": "on_failure", "max_attempts": 3})) == ["restart.policy"]


def test_should_restart():
    always, never = RestartPolicy(RestartMode.ALWAYS), RestartPolicy(RestartMode.NEVER)
    on_failure = RestartPolicy(RestartMode.ON_FAILURE, max_attempts=2)
    unlimited = RestartPolicy(RestartMode.ON_FAILURE)
    assert always.should_restart(failed=False, restarts=10**6)
    assert always.should_restart(failed=True, restarts=0)
    assert not never.should_restart(failed=True, restarts=0)
    assert not on_failure.should_restart(failed=False, restarts=0)
    assert on_failure.should_restart(failed=True, restarts=0)
    assert on_failure.should_restart(failed=True, restarts=1)
    assert not on_failure.should_restart(failed=True, restarts=2)
    assert unlimited.should_restart(failed=True, restarts=10**6)
    assert not RestartPolicy(RestartMode.ON_FAILURE, 0).should_restart(failed=True, restarts=0)


def test_backoff_doubles_up_to_the_cap():
    r = RestartPolicy(backoff_s=1.0, max_backoff_s=60.0)
    assert [r.backoff_delay_s(n) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert r.backoff_delay_s(10**9) == 60.0


# ---- health --------------------------------------------------------------------

def test_health_exec_probe():
    h = validate(spec(health={"command": "wget -q -O- http://127.0.0.1:8080/", "interval_s": 5,
                              "timeout_s": 2.5, "retries": 4, "start_period_s": 10})).health
    assert h == HealthCheck(("wget", "-q", "-O-", "http://127.0.0.1:8080/"), 5.0, 2.5, 4, 10.0)
    h = validate(spec(health={"command": ["true"]})).health
    assert h == HealthCheck(("true",), 10.0, 5.0, 3, 0.0)


def test_health_image_means_the_images_healthcheck():
    assert validate(spec(health={"image": True})).health is None
    assert validate(BASE).health is None
    assert validate(spec(health={"image": True})) == validate(BASE)


@pytest.mark.parametrize("health, path, fragment", [
    ({}, "health.command", "required"),
    ({"interval_s": 5}, "health.command", "required"),
    ({"command": []}, "health.command", "empty"),
    ({"command": ["ok", 3]}, "health.command[1]", "must be a string"),
    ({"command": "true", "interval_s": 0.5}, "health.interval_s", "between 1 and 3600"),
    ({"command": "true", "timeout_s": 0}, "health.timeout_s", "between 0.1 and 3600"),
    ({"command": "true", "retries": 0}, "health.retries", "between 1 and 100"),
    ({"command": "true", "start_period_s": -1}, "health.start_period_s", "between 0 and 3600"),
    ({"command": "true", "interval": 5}, "health.interval", "did you mean 'interval_s'?"),
    ({"image": False}, "health.image", "can only be true"),
    ({"image": True, "command": "true"}, "health", "remove command"),
    ("curl localhost", "health", "must be a table"),
])
def test_health_rejects(health, path, fragment):
    one_problem(spec(health=health), path, fragment)


# ---- unknown fields ------------------------------------------------------------

@pytest.mark.parametrize("field, suggestion", [
    ("replica", "replicas"), ("Replicas", "replicas"), ("imag", "image"), ("enviroment", None),
    ("constraint", "constraints"), ("max_per_nodes", "max_per_node"), ("comand", "command"),
    ("mem", "memory"), ("strategie", "strategy"), ("xyzzy", None),
])
def test_unknown_field_suggests_the_closest(field, suggestion):
    p = one_problem(spec(**{field: 1}), field, f"unknown field {field!r}")
    if suggestion:
        assert p.message == f"unknown field {field!r} (did you mean {suggestion!r}?)"
    else:
        assert "did you mean" not in p.message


def test_priority_is_1_to_100_and_out_of_the_canonical_form_at_its_default():
    assert validate(spec()).priority == 50 and "priority" not in validate(spec()).to_dict()
    high = validate(spec(priority=80))
    assert high.to_dict()["priority"] == 80 and high.container_hash() == validate(spec()).container_hash()
    one_problem(spec(priority=0), "priority", "must be between 1 and 100")
    one_problem(spec(priority="high"), "priority", "must be an integer")


def test_odd_field_names_are_quoted_in_paths():
    one_problem(spec(**{"": 1}), '[""]', "unknown field ''")
    one_problem(spec(**{"a b": 1}), '["a b"]', "unknown field 'a b'")
    one_problem(spec(restart={"x.y": 1}), 'restart["x.y"]', "unknown field")


def test_non_string_field_names():
    one_problem({**BASE, 1: "x"}, "", "field names must be strings")


# ---- the whole spec ------------------------------------------------------------

def test_every_problem_at_once():
    raw = {"name": "Web", "image": "busybox", "replica": 3, "env": {"1X": "a"},
           "restart": {"policy": "sometimes"}}
    found = problems(raw)
    assert [p.path for p in found] == ["replica", "name", "env.1X", "restart.policy"]
    assert "did you mean 'replicas'?" in found[0].message


def test_many_problems_across_every_field():
    raw = {"name": "", "image": 1, "command": [], "env": {"A": 1}, "cpu": 0, "memory": "1KiB",
           "replicas": -1, "constraints": ["x"], "spread": "!", "max_per_node": 0,
           "restart": {"policy": "x"}, "health": {}, "strategy": "x", "extra": 1}
    assert paths(raw) == ["extra", "name", "image", "command", "env.A", "cpu", "memory", "replicas",
                          "constraints[0]", "spread", "max_per_node", "restart.policy",
                          "health.command", "strategy"]


def test_problem_count_is_capped():
    raw = {**BASE, **{f"junk{i}": 1 for i in range(MAX_PROBLEMS + 50)}}
    found = problems(raw)
    assert len(found) == MAX_PROBLEMS + 1
    assert found[-1] == Problem("", "50 more problems not shown")


@pytest.mark.parametrize("raw", [None, [], "web", 3, [BASE]])
def test_spec_must_be_a_table(raw):
    one_problem(raw, "", "must be a table")


def test_spec_size_is_bounded():
    big = spec(env={"BIG": "x" * 8000, **{f"V{i}": "y" * 8000 for i in range(8)}})
    found = problems(big)
    assert len(found) == 1 and found[0].path == "" and f"limit is {MAX_SPEC_BYTES}" in found[0].message
    # the gate comes before per-field checks: junk in an oversized spec is not walked
    found = problems({"junk": "z" * MAX_SPEC_BYTES})
    assert len(found) == 1 and "limit" in found[0].message


def test_unencodable_input_is_a_spec_error():
    nested: list = []
    inner = nested
    for _ in range(100_000):
        inner.append([])
        inner = inner[0]
    one_problem(spec(command=nested), "", "cannot be encoded as JSON")
    loop: dict = {}
    loop["self"] = loop
    one_problem(spec(env=loop), "", "cannot be encoded as JSON")
    one_problem(spec(env={"A": "\ud800"}), "", "cannot be encoded as JSON")


def test_spec_error_forms():
    with pytest.raises(SpecError) as info:
        validate({"name": "web"})
    err = info.value
    assert isinstance(err, ValueError)
    assert err.problems == [Problem("image", "required")]
    assert str(err) == "invalid job spec (1 problem):\n  image: required"
    assert err.to_json() == {"error": "invalid job spec",
                             "problems": [{"path": "image", "message": "required"}]}
    assert json.loads(json.dumps(err.to_json())) == err.to_json()


# ---- TOML and JSON -------------------------------------------------------------

def test_load_toml():
    s = load_toml('''
        name = "web"
        image = "busybox"
        command = ["sleep", "3600"]
        cpu = 0.5
        memory = "128MiB"
        replicas = 2
        constraints = ["rack in [a, b]"]

        [env]
        GREETING = "hello"

        [restart]
        policy = "on-failure"
        max_attempts = 3

        [health]
        command = "true"
        interval_s = 2
    ''')
    assert (s.cpu_millis, s.memory_bytes, s.replicas) == (500, 128 * MiB, 2)
    assert s.env == (("GREETING", "hello"),)
    assert s.restart.max_attempts == 3 and s.health.interval_s == 2.0


def test_toml_syntax_error_has_line_and_column():
    with pytest.raises(SpecError) as info:
        load_toml('name = "web"\nimage = busybox\n')
    (p,) = info.value.problems
    assert p.path == "" and p.message.startswith("TOML syntax error") and "line 2" in p.message


def test_toml_validation_errors_have_paths():
    with pytest.raises(SpecError) as info:
        load_toml('name = "web"\nimage = "busybox"\n[env]\nPORT = 8080\n[restart]\npolicy = "nope"\n')
    assert [p.path for p in info.value.problems] == ["env.PORT", "restart.policy"]


def test_toml_dates_are_rejected_not_crashed():
    with pytest.raises(SpecError) as info:
        load_toml('name = "web"\nimage = "busybox"\nreplicas = 2024-01-01\n')
    assert [p.path for p in info.value.problems] == ["replicas"]
    assert "got date" in info.value.problems[0].message


@pytest.mark.parametrize("text", [
    "x = " + "[" * 20000 + "]" * 20000,      # nested too deeply for the parser
    "x = " + "1" * 5000,                      # an integer Python will not convert
    "\x00",
])
def test_toml_pathological_input(text):
    with pytest.raises(SpecError):
        load_toml(text)


def test_toml_size_is_bounded():
    with pytest.raises(SpecError, match="limit is 65536"):
        load_toml('name = "web"\n' + "#" * MAX_SPEC_BYTES)


def test_from_json_accepts_objects_text_and_bytes():
    expected = validate(spec(replicas=2))
    assert from_json(spec(replicas=2)) == expected
    assert from_json(json.dumps(spec(replicas=2))) == expected
    assert from_json(json.dumps(spec(replicas=2)).encode()) == expected


@pytest.mark.parametrize("body, fragment", [
    ("{", "JSON syntax error"),
    (b"\xff\xfe", "not valid UTF-8"),
    ("[" * 30_000, "nested too deeply"),
    ("1" * 5000, "JSON value error"),
    ("[]", "must be a table"),
    (b"x" * (MAX_SPEC_BYTES + 1), "limit"),
])
def test_from_json_errors(body, fragment):
    with pytest.raises(SpecError) as info:
        from_json(body)
    assert fragment in str(info.value)


def test_example_job_file_is_valid():
    s = load_toml((ROOT / "examples" / "web.toml").read_text())
    assert s.name == "web" and s.image == "shoal-demo:latest"
    assert (s.cpu_millis, s.memory_bytes, s.replicas, s.spread) == (250, 32 * MiB, 3, "rack")


def test_docs_list_every_field():
    doc = (ROOT / "docs" / "jobspec.md").read_text()
    from auction.spec import FIELDS, HEALTH_FIELDS, RESTART_FIELDS
    for field in FIELDS + RESTART_FIELDS + HEALTH_FIELDS:
        assert f"`{field}`" in doc, field


# ---- canonical form and hashes --------------------------------------------------

FULL = spec(command="httpd -f -p 8080", env={"B": "2", "A": "1"}, cpu="250m", memory="1G",
            replicas=3, constraints=["rack in a,b", "zone!=x"], spread="rack", max_per_node=2,
            restart={"policy": "on-failure", "max_attempts": 4, "backoff_s": 2},
            health={"command": "true", "interval_s": 3}, strategy="spread")


def test_to_dict_is_canonical():
    assert validate(FULL).to_dict() == {
        "name": "web", "image": "busybox:1.36", "command": ["httpd", "-f", "-p", "8080"],
        "env": {"A": "1", "B": "2"}, "cpu": 0.25, "memory": "1GiB", "replicas": 3,
        "constraints": ["rack in [a, b]", "zone != x"], "spread": "rack", "max_per_node": 2,
        "restart": {"policy": "on-failure", "max_attempts": 4, "backoff_s": 2.0, "max_backoff_s": 60.0},
        "health": {"command": ["true"], "interval_s": 3.0, "timeout_s": 5.0, "retries": 3,
                   "start_period_s": 0.0},
        "strategy": "spread",
    }
    assert validate(BASE).to_dict() == {
        "name": "web", "image": "busybox:1.36", "cpu": 0.1, "memory": "64MiB", "replicas": 1,
        "restart": {"policy": "always", "backoff_s": 1.0, "max_backoff_s": 60.0},
        "strategy": "binpack",
    }


@pytest.mark.parametrize("raw", [BASE, FULL, spec(memory=6 * MiB + 1, cpu=1024, replicas=0),
                                 spec(health={"image": True}, command=["a b", "'c'"])])
def test_round_trip(raw):
    s = validate(raw)
    assert validate(s.to_dict()) == s
    assert validate(json.loads(s.canonical_json())) == s
    assert validate(s.to_dict()).to_dict() == s.to_dict()


def test_hash_ignores_spelling_and_order():
    a = validate(FULL)
    reordered = dict(reversed(list(FULL.items())))
    respelled = {**FULL, "command": ["httpd", "-f", "-p", "8080"], "cpu": 0.25, "memory": "1024MiB",
                 "constraints": ["rack in [a, b]", "zone != x"],
                 "restart": {"backoff_s": 2.0, "max_attempts": 4, "policy": "on-failure",
                             "max_backoff_s": 60}}
    assert validate(reordered).spec_hash() == a.spec_hash()
    assert validate(respelled).spec_hash() == a.spec_hash()
    assert validate(spec(strategy="binpack", replicas=1)).spec_hash() == validate(BASE).spec_hash()


def test_hash_changes_with_any_field():
    base = validate(FULL).spec_hash()
    for change in [{"replicas": 4}, {"image": "busybox:1.37"}, {"env": {"A": "1"}}, {"cpu": 0.3},
                   {"constraints": ["rack in [b, a]", "zone != x"]}, {"spread": "zone"},
                   {"strategy": "binpack"}, {"restart": {"policy": "always"}}]:
        assert validate({**FULL, **change}).spec_hash() != base, change


def test_golden_hash():
    # The canonical form is stored, gossiped and put on container labels: a change
    # to it (or to a default) must be deliberate.  Update this value only then.
    s = validate(FULL)
    assert s.canonical_json() == json.dumps(s.to_dict(), sort_keys=True, separators=(",", ":")).encode()
    assert s.spec_hash() == GOLDEN_SPEC_HASH
    assert len(s.spec_hash()) == 64 and int(s.spec_hash(), 16) >= 0


GOLDEN_SPEC_HASH = "1eaf9f17e568a21ba412c396725330961c30b27fd00dc711b704769ed90b503b"


def test_container_hash_covers_only_the_container():
    a = validate(FULL)
    for same in [{"replicas": 7}, {"constraints": []}, {"spread": "zone"}, {"max_per_node": 1},
                 {"strategy": "binpack"}, {"restart": {"policy": "never"}}]:
        assert validate({**FULL, **same}).container_hash() == a.container_hash(), same
    for different in [{"image": "busybox:1.37"}, {"command": "httpd"}, {"env": {}}, {"cpu": 1},
                      {"memory": "2G"}, {"health": {"command": "false"}}]:
        assert validate({**FULL, **different}).container_hash() != a.container_hash(), different


# ---- Hypothesis ----------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)
# Values worth trying in each field: right type, wrong type, edge values.
field_values = {
    "name": st.sampled_from(["web", "Web", "", "a" * 64, "w-1"]) | json_values,
    "image": st.sampled_from(["busybox", "", "a b"]) | json_values,
    "command": st.sampled_from(["sleep 1", "'", "", ["a"], []]) | st.lists(json_scalars, max_size=4),
    "env": st.dictionaries(st.sampled_from(["A", "1B", "", "_x"]) | st.text(max_size=5),
                           st.text(max_size=5) | json_scalars, max_size=4) | json_values,
    "cpu": st.sampled_from([0.1, 0, "500m", "1.5", -1, 2000, 1e308, "m"]) | json_scalars,
    "memory": st.sampled_from(["64MiB", "1G", "4MiB", "1xb", 6 * MiB, 2**80]) | json_scalars,
    "replicas": st.integers(-5, 1005) | json_scalars,
    "constraints": st.lists(st.sampled_from(["rack == a", "rack in [a,b]", "x = y", "in in in"])
                            | st.text(max_size=15) | json_scalars, max_size=4) | json_values,
    "spread": st.sampled_from(["rack", "", "a b"]) | json_scalars,
    "max_per_node": st.integers(-2, 1002) | json_scalars,
    "restart": st.fixed_dictionaries({}, optional={
        "policy": st.sampled_from(["always", "on-failure", "never", "x"]) | json_scalars,
        "max_attempts": st.integers(-1, 20000) | json_scalars,
        "backoff_s": st.floats() | json_scalars,
        "max_backoff_s": st.floats() | json_scalars,
        "polcy": json_scalars,
    }) | json_values,
    "health": st.fixed_dictionaries({}, optional={
        "command": st.sampled_from(["true", ["true"], [], "'"]) | json_values,
        "interval_s": st.floats() | json_scalars, "timeout_s": st.floats() | json_scalars,
        "retries": st.integers(-1, 200) | json_scalars,
        "start_period_s": st.floats() | json_scalars, "image": json_scalars,
    }) | json_values,
    "strategy": st.sampled_from(["binpack", "spread", "x"]) | json_scalars,
    "replica": json_scalars,
    "priority": json_scalars,
    "update": st.fixed_dictionaries({}, optional={
        "max_parallel": st.integers(-1, 2000) | json_scalars,
        "min_healthy_s": st.floats() | json_scalars, "healthy_deadline_s": st.floats() | json_scalars,
        "progress_deadline_s": st.floats() | json_scalars,
        "order": st.sampled_from(["start-first", "stop-first", "x"]) | json_scalars,
        "canary": st.integers(-1, 2000) | json_scalars, "auto_promote": json_scalars,
        "auto_revert": json_scalars, "paralel": json_scalars,
    }) | json_values,
    "stop_signal": st.sampled_from(["SIGTERM", "int", "SIGFOO"]) | json_scalars,
    "stop_grace_s": st.floats() | json_scalars,
}
mutated_specs = st.fixed_dictionaries(
    {"name": st.just("web") | field_values["name"], "image": st.just("busybox") | field_values["image"]},
    optional={k: v for k, v in field_values.items() if k not in ("name", "image")},
)


def validate_or_spec_error(raw):
    try:
        s = validate(raw)
    except SpecError as e:
        assert e.problems and all(isinstance(p, Problem) for p in e.problems)
        assert len(e.problems) <= MAX_PROBLEMS + 1
        return None
    # whatever validates round-trips through its canonical form
    assert validate(s.to_dict()) == s
    assert validate(json.loads(s.canonical_json())).spec_hash() == s.spec_hash()
    return s


@settings(max_examples=300, deadline=None, suppress_health_check=[HypothesisHealthCheck.too_slow])
@given(st.dictionaries(st.text(max_size=12), json_values, max_size=8) | json_values)
def test_arbitrary_json_raises_only_spec_error(raw):
    validate_or_spec_error(raw)


@settings(max_examples=400, deadline=None, suppress_health_check=[HypothesisHealthCheck.too_slow])
@given(mutated_specs)
def test_mutated_specs_raise_only_spec_error(raw):
    validate_or_spec_error(raw)


valid_specs = st.fixed_dictionaries(
    {"name": st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True),
     "image": st.from_regex(r"[a-z0-9][a-z0-9._/:-]{0,30}", fullmatch=True)},
    optional={
        "command": st.lists(st.text(st.characters(blacklist_characters="\x00",
                                                  blacklist_categories=("Cs",)), max_size=10),
                            min_size=1, max_size=4),
        "env": st.dictionaries(st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True),
                               st.text(st.characters(blacklist_characters="\x00",
                                                     blacklist_categories=("Cs",)), max_size=10),
                               max_size=4),
        "cpu": st.integers(1, 1_024_000).map(lambda m: f"{m}m"),
        "memory": st.integers(6 * MiB, 2**40),
        "replicas": st.integers(0, 1000),
        "constraints": st.lists(st.sampled_from(["rack == a", "zone != b", "arch in [x, y]"]), max_size=3),
        "spread": st.sampled_from(["rack", "zone"]),
        "max_per_node": st.integers(1, 1000),
        "restart": st.sampled_from([{"policy": "never"}, {"policy": "on-failure", "max_attempts": 2}]),
        "health": st.sampled_from([{"image": True}, {"command": "true", "interval_s": 1.5}]),
        "strategy": st.sampled_from(["binpack", "spread"]),
    },
)


@settings(max_examples=200, deadline=None)
@given(valid_specs)
def test_valid_specs_round_trip(raw):
    s = validate(raw)
    assert validate(s.to_dict()) == s
    assert validate(s.to_dict()).spec_hash() == s.spec_hash()
    assert load_toml_equivalent(s) == s


def load_toml_equivalent(s: JobSpec) -> JobSpec:
    """The canonical form written as TOML loads back to the same spec."""
    lines = []
    tables = []
    for key, value in s.to_dict().items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {toml_value(value)}")
    for key, table in tables:
        lines.append(f"[{key}]")
        lines += [f"{toml_value(k)} = {toml_value(v)}" for k, v in table.items()]
    return load_toml("\n".join(lines) + "\n")


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        escaped = "".join(
            "\\" + c if c in '"\\' else f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F else c
            for c in value)
        return f'"{escaped}"'
    return "[" + ", ".join(toml_value(v) for v in value) + "]"


# ---- pull policy -----------------------------------------------------------------

def test_pull_defaults_to_missing_and_stays_out_of_the_canonical_form():
    from auction.spec import PullPolicy
    s = validate(spec())
    assert s.pull is PullPolicy.MISSING
    assert "pull" not in s.to_dict()
    # Spelling the default out changes neither hash: agents agree with older ones.
    spelled = validate(spec(pull="missing"))
    assert (spelled.spec_hash(), spelled.container_hash()) == (s.spec_hash(), s.container_hash())


@pytest.mark.parametrize("value", ["always", "never"])
def test_pull_round_trips_and_does_not_replace_containers(value):
    s = validate(spec(pull=value))
    assert s.to_dict()["pull"] == value
    assert validate(s.to_dict()) == s
    base = validate(spec())
    # A different spec version (gossiped, stored), but the same containers.
    assert s.spec_hash() != base.spec_hash()
    assert s.container_hash() == base.container_hash()


def test_pull_rejects_unknown_values_with_a_guess():
    [p] = problems(spec(pull="alway"))
    assert p.path == "pull" and "missing, always, never" in p.message and "did you mean 'always'" in p.message
    [p] = problems(spec(pull=True))
    assert p.path == "pull" and "boolean" in p.message


# ---- image source ------------------------------------------------------------------

def test_source_defaults_to_the_registry_and_peers_round_trips_without_replacing_containers():
    from auction.spec import ImageSource
    base = validate(spec())
    assert base.source is ImageSource.REGISTRY and "source" not in base.to_dict()
    spelled = validate(spec(source="registry"))
    assert spelled.spec_hash() == base.spec_hash()
    peers = validate(spec(source="peers"))
    assert peers.to_dict()["source"] == "peers" and validate(peers.to_dict()) == peers
    assert peers.container_hash() == base.container_hash() and peers.spec_hash() != base.spec_hash()


@pytest.mark.parametrize("pull", ["always", "never"])
def test_source_peers_needs_pull_missing(pull):
    [p] = problems(spec(source="peers", pull=pull))
    assert p.path == "source" and 'pull = "missing"' in p.message
    [p] = problems(spec(source="peer"))
    assert p.path == "source" and "registry, peers" in p.message


def test_a_global_job_has_no_count_and_says_which_fields_it_cannot_have():
    spec = validate({"name": "logs", "image": "busybox", "mode": "global"})
    assert spec.is_global and spec.replicas == 0 and spec.max_per_node == 1
    assert spec.to_dict()["mode"] == "global" and "replicas" not in spec.to_dict()
    assert validate(spec.to_dict()) == spec
    # The container is the same whatever the mode: switching replaces nothing.
    assert spec.container_hash() == validate({"name": "logs", "image": "busybox"}).container_hash()
    # A replicated job's canonical form (and so its hashes) is as before the field existed.
    assert "mode" not in validate({"name": "web", "image": "busybox", "mode": "replicated"}).to_dict()
    with pytest.raises(SpecError) as ei:
        validate({"name": "logs", "image": "busybox", "mode": "global", "replicas": 3, "spread": "rack",
                  "max_per_node": 1})
    assert sorted(p.path for p in ei.value.problems) == ["max_per_node", "replicas", "spread"]
    assert all("global job" in p.message for p in ei.value.problems)
    with pytest.raises(SpecError, match="did you mean 'global'"):
        validate({"name": "logs", "image": "busybox", "mode": "globl"})


def test_volumes_are_checked_field_by_field_and_shape_the_container():
    base = {"name": "db", "image": "busybox"}
    spec = validate({**base, "volumes": {"data": {"target": "/var/lib/db"},
                                         "tmp": {"target": "/tmp", "type": "tmpfs", "size": "16MiB"},
                                         "logs": {"target": "/logs", "type": "host", "source": "/srv/logs",
                                                  "read_only": True}}})
    assert [(v.name, v.kind) for v in spec.volumes] == [("data", "volume"), ("logs", "host"), ("tmp", "tmpfs")]
    assert spec.to_dict()["volumes"]["data"] == {"target": "/var/lib/db"}       # defaults left out
    assert validate(spec.to_dict()) == spec
    assert spec.container_hash() != validate(base).container_hash()             # adding one replaces containers
    assert "volumes" not in validate(base).to_dict()                            # a job without keeps its hashes
    with pytest.raises(SpecError) as ei:
        validate({**base, "volumes": {
            "Data": {"target": "/d"},                           # name
            "a": {"target": "relative"},                        # not absolute
            "b": {"target": "/x/../etc"},                       # climbs
            "c": {"target": "/c", "type": "host"},              # host needs a source
            "d": {"target": "/d", "source": "/srv"},            # only host has one
            "e": {"target": "/e", "size": "1GiB"},              # only tmpfs has a size
            "ok": {"target": "/ok"},
            "f": {"target": "/ok"},                             # the same target as "ok"
            "g": {"target": "/g", "type": "nfs"},
            "h": {"target": "/h", "type": "tmpfs", "size": "1KiB"},
            "i": {"target": "/i", "mode": "rw"},                # unknown field
        }})
    got = {p.path for p in ei.value.problems}
    assert got == {"volumes.Data", "volumes.a.target", "volumes.b.target", "volumes.c.source", "volumes.d.source",
                   "volumes.e.size", "volumes.f.target", "volumes.g.type", "volumes.h.size", "volumes.i.mode"}, got


def test_entrypoint_is_split_like_command_and_shapes_the_container():
    spec = validate({"name": "x", "image": "busybox", "entrypoint": "sh -c", "command": ["echo hi"]})
    assert spec.entrypoint == ("sh", "-c") and spec.to_dict()["entrypoint"] == ["sh", "-c"]
    assert validate(spec.to_dict()) == spec
    assert spec.container_hash() != validate({"name": "x", "image": "busybox",
                                               "command": ["echo hi"]}).container_hash()
    with pytest.raises(SpecError, match="entrypoint: is empty \\(omit it to use the image's ENTRYPOINT\\)"):
        validate({"name": "x", "image": "busybox", "entrypoint": []})
