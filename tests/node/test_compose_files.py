"""Compose `configs:`, `secrets:` and file binds as a job's files (node.cli.compose_files)."""

from __future__ import annotations

import pytest

from node.cli.compose import ComposeError, convert, parse
from node.cli.beside import reader_beside

COMPOSE = """
services:
  web:
    image: shoal-demo:latest
    volumes:
      - ./nginx.conf:/etc/nginx/nginx.conf:ro
    configs:
      - app_config
      - source: site
        target: /etc/site.yml
        mode: 0440
    secrets:
      - db_pass
      - source: api_key
        target: api.key
configs:
  app_config:
    content: |
      a: 1
  site:
    file: ./site.yml
secrets:
  db_pass:
    file: ./secrets/db_pass.txt
  api_key:
    file: ./api.key
"""


def beside(tmp_path, text: str = COMPOSE):
    (tmp_path / "nginx.conf").write_text("worker_processes 2;\n")
    (tmp_path / "site.yml").write_text("title: shop\n")
    (tmp_path / "secrets").mkdir(exist_ok=True)
    (tmp_path / "secrets" / "db_pass.txt").write_text("hunter2")
    (tmp_path / "api.key").write_text("k-123")
    return convert(parse(text), "shop", read_beside=reader_beside(str(tmp_path / "compose.yml")))


def problems(e: pytest.ExceptionInfo) -> list[str]:
    return [str(p) for p in e.value.problems]


def test_configs_secrets_and_bound_files_reach_the_job_with_their_targets_and_modes(tmp_path):
    stack = beside(tmp_path)
    (web,) = stack.jobs
    assert [(f.name, f.target, f.content, f"{f.mode:o}") for f in web.files] == [
        ("api_key", "/run/secrets/api.key", "k-123", "444"),       # a relative secret target: under /run/secrets
        ("app_config", "/app_config", "a: 1\n", "444"),            # a config's default target: /NAME
        ("db_pass", "/run/secrets/db_pass", "hunter2", "444"),
        ("nginx.conf", "/etc/nginx/nginx.conf", "worker_processes 2;\n", "444"),
        ("site", "/etc/site.yml", "title: shop\n", "440")]         # YAML's 0440 is octal, as Compose reads it
    assert [f.name for f in web.files if f.secret] == ["api_key", "db_pass"]
    assert [str(w) for w in stack.warnings] == [
        f"secrets.{name}: kept in the job spec as a file marked secret: the API does not show its text, but "
        "every node's job store holds it, not encrypted apart as Swarm's secrets are"
        for name in ("db_pass", "api_key")]


def test_a_bound_file_mounted_writable_is_copied_read_only_with_a_warning(tmp_path):
    stack = beside(tmp_path, COMPOSE.replace("nginx.conf:ro", "nginx.conf"))
    assert "services.web.volumes[0]: ./nginx.conf is copied into the job and mounted read-only: what a replica " \
           "writes there would not reach the file" in [str(w) for w in stack.warnings]


def test_what_cannot_be_had_is_an_error_naming_its_entry(tmp_path):
    (tmp_path / "data").mkdir()
    text = """
services:
  web:
    image: shoal-demo:latest
    volumes: ["./data:/data", "./gone.conf:/etc/gone.conf"]
    configs: [nowhere, ext]
    secrets: [env_secret]
configs:
  ext: {external: true}
  missing: {file: ./missing.yml}
secrets:
  env_secret: {environment: DB_PASS}
"""
    with pytest.raises(ComposeError) as e:
        convert(parse(text), "shop", read_beside=reader_beside(str(tmp_path / "compose.yml")))
    assert problems(e) == [
        "configs.ext.external: shoal keeps no configs apart from jobs: give 'file' or 'content'",
        "configs.missing.file: './missing.yml': no such file (paths are relative to the Compose file)",
        "secrets.env_secret.environment: the deploying shell's variables mean nothing on the cluster: give 'file'",
        "services.web.volumes[0]: './data' names a directory of this machine (relative, or under ~), which other "
        "nodes do not have: give the absolute path on the nodes, or use a named volume (a file is copied into "
        "the job, a directory is not)",
        "services.web.volumes[1]: './gone.conf': no such file beside the Compose file",
        "services.web.configs[0]: config 'nowhere' is not declared under the top-level 'configs:'"]


def test_a_file_too_large_for_a_job_or_not_text_is_refused(tmp_path):
    (tmp_path / "big.conf").write_text("x" * (64 * 1024 + 1))
    (tmp_path / "blob.bin").write_bytes(b"\xff\xfe\x00")
    text = """
services:
  web:
    image: shoal-demo:latest
    configs: [big, blob]
configs:
  big: {file: big.conf}
  blob: {file: blob.bin}
"""
    with pytest.raises(ComposeError) as e:
        convert(parse(text), "shop", read_beside=reader_beside(str(tmp_path / "compose.yml")))
    assert problems(e) == ["configs.big.file: 'big.conf': larger than 65536 bytes",
                           "configs.blob.file: 'blob.bin': not UTF-8 text"]


def test_a_bad_mode_is_named_at_its_compose_entry(tmp_path):
    text = COMPOSE.replace("mode: 0440", "mode: 0o1777")
    with pytest.raises(ComposeError) as e:
        beside(tmp_path, text)
    assert problems(e) == ["services.web.configs[1].mode: must be permission bits like \"0440\" "
                           "(or 0o440 in TOML), got '0o1777'"]
