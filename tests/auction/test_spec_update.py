"""The `[update]` table and the stop settings of a job spec."""

import pytest

from auction.spec import SpecError, UpdateOrder, UpdatePolicy, load_toml, validate

BASE = {"name": "web", "image": "busybox:1.36"}


def one_problem(raw, path, *fragments):
    with pytest.raises(SpecError) as info:
        validate(raw)
    found = info.value.problems
    assert [p.path for p in found] == [path], found
    for fragment in fragments:
        assert fragment in found[0].message, found[0]


def test_defaults_are_swarm_and_nomad_like():
    spec = validate(BASE)
    assert spec.update == UpdatePolicy(max_parallel=1, min_healthy_s=10.0, healthy_deadline_s=300.0,
                                       progress_deadline_s=600.0, order=UpdateOrder.START_FIRST, canary=0,
                                       auto_promote=False, auto_revert=False)
    assert (spec.stop_signal, spec.stop_grace_s) == ("", 5.0)   # "": the image's STOPSIGNAL


def test_defaults_stay_out_of_the_canonical_form_so_hashes_do_not_move():
    plain = validate(BASE)
    explicit = validate({**BASE, "update": {"max_parallel": 1, "order": "start-first"}, "stop_grace_s": 5})
    assert explicit.to_dict() == plain.to_dict() == {**BASE, "cpu": 0.1, "memory": "64MiB", "replicas": 1,
                                                    "restart": plain.restart.to_dict(), "strategy": "binpack"}
    assert explicit.spec_hash() == plain.spec_hash()
    # Naming SIGTERM is not the default (that is the image's STOPSIGNAL), so it
    # is kept; like every stop setting it replaces no running container.
    term = validate({**BASE, "stop_signal": "TERM"})
    assert term.to_dict()["stop_signal"] == "SIGTERM" and term.container_hash() == plain.container_hash()


def test_update_and_stop_settings_replace_no_container():
    plain = validate(BASE)
    changed = validate({**BASE, "update": {"max_parallel": 3, "auto_revert": True, "canary": 1},
                        "stop_signal": "SIGQUIT", "stop_grace_s": 30})
    assert changed.spec_hash() != plain.spec_hash()
    assert changed.container_hash() == plain.container_hash()


def test_a_full_table_round_trips():
    spec = load_toml('name = "web"\nimage = "busybox"\nstop_signal = "sigint"\nstop_grace_s = 12.5\n'
                     '[update]\nmax_parallel = 2\nmin_healthy_s = 3\nhealthy_deadline_s = 60\n'
                     'progress_deadline_s = 120\norder = "stop-first"\ncanary = 1\nauto_promote = true\n'
                     'auto_revert = true\n')
    assert spec.update == UpdatePolicy(2, 3.0, 60.0, 120.0, UpdateOrder.STOP_FIRST, 1, True, True)
    assert (spec.stop_signal, spec.stop_grace_s) == ("SIGINT", 12.5)
    assert validate(spec.to_dict()) == spec


@pytest.mark.parametrize(("update", "path", "fragment"), [
    ({"max_parallel": 0}, "update.max_parallel", "between 1 and"),
    ({"max_parallel": "2"}, "update.max_parallel", "must be an integer"),
    ({"order": "rolling"}, "update.order", "start-first, stop-first"),
    ({"canary": -1}, "update.canary", "between 0 and"),
    ({"auto_revert": "yes"}, "update.auto_revert", "true or false"),
    ({"min_healthy_s": 30, "healthy_deadline_s": 20}, "update.healthy_deadline_s", "more than min_healthy_s"),
    ({"healthy_deadline_s": 100, "progress_deadline_s": 50}, "update.progress_deadline_s",
     "at least healthy_deadline_s"),
    ({"paralel": 2}, "update.paralel", "unknown field"),
])
def test_bad_update_fields_are_named(update, path, fragment):
    one_problem({**BASE, "update": update}, path, fragment)


def test_update_must_be_a_table():
    one_problem({**BASE, "update": 3}, "update", "table")


@pytest.mark.parametrize(("field", "value", "fragment"), [
    ("stop_signal", "SIGFOO", "must be one of SIGTERM"),
    ("stop_signal", 15, "signal name"),
    ("stop_grace_s", -1, "between 0 and 600"),
    ("stop_grace_s", 601, "between 0 and 600"),
])
def test_bad_stop_settings_are_named(field, value, fragment):
    one_problem({**BASE, field: value}, field, fragment)
