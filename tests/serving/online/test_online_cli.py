"""`segwh serve` and `segwh api-key`: clear errors, keys shown once, no Dagster import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from process_helpers import free_port

from serving.online import auth
from warehouse.settings import PROJECT_DIR

SEGWH = str(Path(sys.executable).parent / "segwh")


def _segwh(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SEGWH_ONLINE_")}
    environment.update(env)
    return subprocess.run(
        [SEGWH, *args], env=environment, capture_output=True, text=True, timeout=60
    )


def test_serve_without_a_redis_url_names_the_variable():
    for command in (["serve"], ["api-key", "list"]):
        result = _segwh(*command)
        assert result.returncode == 2
        assert "SEGWH_ONLINE_REDIS_URL is not set" in result.stderr
        assert "export SEGWH_ONLINE_REDIS_URL=redis://127.0.0.1:6379/0" in result.stderr


def test_an_unreachable_redis_is_named_without_its_password():
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    for command in (["serve"], ["api-key", "list"]):
        result = _segwh(*command, SEGWH_ONLINE_REDIS_URL=url)
        assert result.returncode == 2, result.stderr
        assert "redis://:***@127.0.0.1:" in result.stderr
        assert "hunter2" not in result.stderr + result.stdout


def test_api_keys_are_created_listed_and_revoked(redis_url, api_store):
    env = {"SEGWH_ONLINE_REDIS_URL": redis_url, "SEGWH_ONLINE_REDIS_PREFIX": api_store.prefix}
    created = _segwh(
        "api-key", "create", "--name", "crm-sync", "--scope", "segments:read",
        "--scope", "profiles:read", "--rate-limit", "25", **env,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("segwh_")
    assert "shown only now" in created.stderr
    (stored,) = [k for k in auth.list_keys(api_store.client, api_store.prefix)]
    assert (stored.name, stored.scopes, stored.rate_limit) == (
        "crm-sync", ("segments:read", "profiles:read"), 25.0,
    )  # fmt: skip

    again = _segwh("api-key", "create", "--name", "crm-sync", "--scope", "segments:read", **env)
    assert again.returncode == 2 and "exists already" in again.stderr
    bad = _segwh("api-key", "create", "--name", "x", "--scope", "profiles:write", **env)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr

    listed = _segwh("api-key", "list", **env)
    assert listed.returncode == 0
    assert "crm-sync" in listed.stdout and "segments:read,profiles:read" in listed.stdout
    assert key not in listed.stdout + listed.stderr

    revoked = _segwh("api-key", "revoke", "crm-sync", **env)
    assert revoked.returncode == 0
    assert auth.list_keys(api_store.client, api_store.prefix) == []
    assert _segwh("api-key", "revoke", "crm-sync", **env).returncode == 1


def test_the_api_modules_do_not_import_dagster():
    code = (
        "import sys\n"
        "from orchestration import cli\n"
        "from serving.online.api import create_app, serve\n"
        "create_app('redis://127.0.0.1:6379/0', 'x', b'k' * 32).openapi()\n"
        "cli.build_parser().parse_args(['serve'])\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0].startswith('dagster'))\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
