"""The `files` field (auction.files): what a job may put into its containers, and the errors."""

from __future__ import annotations

import pytest

from auction.files import MAX_FILES
from auction.spec import MAX_SPEC_BYTES, SpecError, load_toml, validate

BASE = {"name": "web", "image": "shoal-demo:latest"}


def problems(**kw) -> list[str]:
    with pytest.raises(SpecError) as e:
        validate({**BASE, **kw})
    return [str(p) for p in e.value.problems]


def test_a_toml_job_with_files_round_trips_through_its_canonical_form():
    spec = load_toml('name = "web"\nimage = "shoal-demo:latest"\n'
                     '[files."nginx.conf"]\ntarget = "/etc/nginx/nginx.conf"\ncontent = """\nworker_processes 2;\n"""\n'
                     '[files.token]\ntarget = "/run/secrets/token"\ncontent = "s3cret"\nmode = 0o400\n')
    assert [(f.name, f.target, f.content, f.mode) for f in spec.files] == [
        ("nginx.conf", "/etc/nginx/nginx.conf", "worker_processes 2;\n", 0o444),
        ("token", "/run/secrets/token", "s3cret", 0o400)]
    assert spec.to_dict()["files"] == {
        "nginx.conf": {"target": "/etc/nginx/nginx.conf", "content": "worker_processes 2;\n"},
        "token": {"target": "/run/secrets/token", "content": "s3cret", "mode": "0400"}}
    assert validate(spec.to_dict()) == spec


def test_a_files_change_replaces_containers_and_no_files_keeps_the_old_hashes():
    plain = validate(BASE)
    one = validate({**BASE, "files": {"a": {"target": "/a", "content": "1"}}})
    two = validate({**BASE, "files": {"a": {"target": "/a", "content": "2"}}})
    mode = validate({**BASE, "files": {"a": {"target": "/a", "content": "1", "mode": "0440"}}})
    assert len({plain.container_hash(), one.container_hash(), two.container_hash(), mode.container_hash()}) == 4
    assert "files" not in plain.to_dict()       # a spec without files hashes as before the field existed


def test_each_mistake_is_named_by_its_path():
    assert problems(files={"a": {"target": "etc/a", "content": ""}}) == [
        "files.a.target: 'etc/a' is not an absolute path like /var/lib/app "
        "(letters, digits, '_', '.', '@', '+', '-')"]
    assert problems(files={"a": {"target": "/a"}}) == [
        "files.a.content: required: the file's text (or, in a TOML job file, source = a file beside it)"]
    assert problems(files={"a": {"content": "x"}}) == [
        "files.a.target: required: the file's path in the container, like /etc/app/config.yml"]
    assert problems(files={"a": {"target": "/a", "content": "x", "mode": "0999"}}) == [
        "files.a.mode: must be permission bits like \"0440\" (or 0o440 in TOML), got '0999'"]
    assert problems(files={"a": {"target": "/a", "content": "x", "owner": "me"}}) == [
        "files.a.owner: unknown field 'owner'"]
    assert problems(files={"a": {"target": "/x", "content": ""}, "b": {"target": "/x", "content": ""}}) == [
        "files.b.target: /x is also the target of files.a"]
    assert problems(files={"a": {"target": "/data", "content": ""}}, volumes={"data": {"target": "/data"}}) == [
        "files.a.target: /data is also the target of volumes.data"]
    assert problems(files=["/etc/a"]) == ["files: must be a table, got an array"]


def test_files_are_bounded_in_number_and_by_the_spec_size():
    many = {f"f{i}": {"target": f"/f{i}", "content": ""} for i in range(MAX_FILES + 1)}
    assert problems(files=many) == [f"files: at most {MAX_FILES} files (got {MAX_FILES + 1})"]
    big = {"a": {"target": "/a", "content": "x" * (MAX_SPEC_BYTES // 2)},
           "b": {"target": "/b", "content": "y" * (MAX_SPEC_BYTES // 2)}}
    [message] = problems(files=big)
    assert message.startswith("the spec is ") and f"the limit is {MAX_SPEC_BYTES}" in message


def test_a_secret_files_text_is_not_shown_but_a_change_of_it_is():
    from auction.files import redact
    from auction.spec_diff import diff

    one = validate({**BASE, "files": {"token": {"target": "/run/secrets/token", "content": "s3cret", "secret": True},
                                      "conf": {"target": "/etc/a.conf", "content": "a = 1"}}})
    shown = redact(one.to_dict())["files"]
    assert shown["token"]["content"].startswith("(secret: 6 bytes, sha256 ") and "s3cret" not in str(shown)
    assert shown["conf"]["content"] == "a = 1"                  # not secret: as it is
    assert validate(one.to_dict()) == one and one.to_dict()["files"]["token"]["content"] == "s3cret"
    two = validate({**one.to_dict(), "files": {**one.to_dict()["files"],
                                               "token": {**one.to_dict()["files"]["token"], "content": "t0ps3cret"}}})
    [change] = diff(one, two)
    assert change.path == "files.token.content" and "s3cret" not in str(change) and change.old != change.new
    assert problems(files={"a": {"target": "/a", "content": "", "secret": "yes"}}) == [
        "files.a.secret: must be true or false"]
