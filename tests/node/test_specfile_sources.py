"""A TOML job's `[files.X] source`: read beside the job file by `shoal job run` (node.cli.specfile)."""

from __future__ import annotations

import pytest

from auction.spec import SpecError, validate
from node.cli.specfile import load_spec_file

JOB = '''name = "web"
image = "nginx:1"
[files.conf]
target = "/etc/nginx/nginx.conf"
source = "conf/nginx.conf"
[files.inline]
target = "/etc/motd"
content = "hi"
'''


def test_a_source_beside_the_job_file_is_sent_as_its_content(tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "nginx.conf").write_text("worker_processes 2;\n")
    (tmp_path / "web.toml").write_text(JOB)
    spec = load_spec_file(str(tmp_path / "web.toml"))
    assert [(f.name, f.content) for f in spec.files] == [("conf", "worker_processes 2;\n"), ("inline", "hi")]
    assert "source" not in spec.to_dict()["files"]["conf"]


def test_a_missing_source_fails_the_command_naming_it(tmp_path, capsys):
    (tmp_path / "web.toml").write_text(JOB)
    with pytest.raises(SystemExit):
        load_spec_file(str(tmp_path / "web.toml"))
    assert ("files.conf.source: 'conf/nginx.conf': no such file (paths are relative to the job file)"
            in capsys.readouterr().err)


def test_over_the_api_a_source_is_an_error_saying_where_it_is_read():
    with pytest.raises(SpecError) as e:
        validate({"name": "web", "image": "x", "files": {"conf": {"target": "/a", "source": "a.conf"}}})
    assert [str(p) for p in e.value.problems] == [
        "files.conf.source: a file beside a TOML job is read by `shoal job run FILE` (and `job plan`), which sends "
        "its text as content; give content here"]
